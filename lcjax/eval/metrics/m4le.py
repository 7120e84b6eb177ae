"""M4LE official metrics (KwanWaiChung/M4LE @47c2af9 `evaluation.py::evaluate_by_dict`).

The response is cut at each of the task's end tokens in turn (`gen_resp.split(t)[0].strip()`), then scored:
- acc: any answer (lowercased) is a substring of the lowercased response;
- exact_match: any answer equals the response (lowercased, stripped);
- rouge: max over non-empty answers of the pltrdy ROUGE-L *recall* (Chinese: `rouge_chinese` on jieba words);
  a ValueError (empty hypothesis) scores 0;
- qa_f1: SQuAD v2 F1 (1 if both sides are empty), max over answers;
- cls_f1: set F1 between the response and answer label lists, split by the task's preprocess: the response is cut
  at the end character ("." / "。") and split on the separator; the answer is cut at "." only for marc
  (`marc_preprocess`), not for mnds-news / thucnews / online-shopping.
- bleu (translation tasks): corpus BLEU-4 per bucket with M4LE's copy of HF evaluate's bleu (`utils/bleu.py`: 13a
  tokenizer for English, per-character Chinese tokenizer), no smoothing;
- single_acc: per bucket, answers found in set(response) over the number of answers (no task in `tasks_param`
  uses it; with a string response the set is of characters, as officially).
Buckets are averaged separately by `length_bucket`, as the official table reports them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

from lcjax.errors import ConfigError
from lcjax.eval.metrics.base import register
from lcjax.eval.metrics.text import jieba_cut, normalize_answer, pltrdy_rouge


def cut_at_end_tokens(response: str, end_tokens: Sequence[str]) -> str:
  """`gen_resp.split(t)[0].strip()` for each end token, then a final strip."""
  for t in end_tokens:
    response = response.split(t)[0].strip()
  return response.strip()


def squad2_f1(gold: str, pred: str, lang: str = "en") -> float:
  """SQuAD v2 `compute_f1` (Chinese: jieba words of the normalised text)."""
  tok = (lambda s: normalize_answer(s).split()) if lang == "en" else (lambda s: jieba_cut(normalize_answer(s)))
  g, p = (tok(gold) if gold else []), (tok(pred) if pred else [])
  if not g or not p:
    return float(g == p)
  same = sum((Counter(g) & Counter(p)).values())
  if same == 0:
    return 0.0
  precision, recall = same / len(p), same / len(g)
  return 2 * precision * recall / (precision + recall)


def _rouge_recall(hyp: str, ref: str, lang: str) -> float:
  if lang == "en":
    return pltrdy_rouge(hyp, ref)["rouge-l"]["r"]
  from rouge_chinese import Rouge

  return Rouge().get_scores(hyps=" ".join(jieba_cut(hyp)), refs=" ".join(jieba_cut(ref)))[0]["rouge-l"]["r"]


def m4le_score(prediction, answers: Sequence, metric: str, lang: str = "en",
               end_tokens: Sequence[str] = ()) -> float:
  """One example's M4LE score for `metric` in {acc, exact_match, rouge, qa_f1, cls_f1}."""
  if isinstance(prediction, list):
    resp = [r.strip() for r in prediction]
  else:
    resp = cut_at_end_tokens(prediction, end_tokens)
  if metric == "acc":
    return float(any(str(a).lower() in resp.lower() for a in answers))
  if metric == "exact_match":
    return float(any(str(a).lower().strip() == resp.lower().strip() for a in answers))
  if metric == "rouge":
    try:
      return max(_rouge_recall(resp, a, lang) for a in answers if a)
    except ValueError:
      return 0.0
  if metric == "qa_f1":
    return max(squad2_f1(a, resp, lang) for a in answers)
  if metric == "cls_f1":
    correct = len(set(answers) & set(resp))
    precision, recall = correct / len(set(resp)), correct / len(set(answers))
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  raise ValueError(f"unknown M4LE metric {metric!r}; known: acc, exact_match, rouge, qa_f1, cls_f1")


def split_labels(text: str, sep: str = ",", end: str | None = ".") -> list[str]:
  """The `*_preprocess` label split: text up to the first `end` (None: no cut), split on `sep`, sorted, stripped."""
  if end is not None:
    text = text.split(end)[0].strip()
  return [t.strip() for t in sorted(text.split(sep))]


# ------------------------------------------------------------------------------------------ bleu (utils/bleu.py)
_13A_RULES = ((re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "), (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
              (re.compile(r"([\.,])([^0-9])"), r" \1 \2"), (re.compile(r"([0-9])(-)"), r"\1 \2 "))
# M4LE's copy of the sacrebleu Chinese ranges, written as the same string literals: "\u20000" is the two characters
# U+2000 "0", so the string comparisons treat U+2001..U+2A6D (dashes, ellipsis, arrows, ...) as Chinese too.
_ZH_RANGES = (("\u3400", "\u4db5"), ("\u4e00", "\u9fa5"), ("\u9fa6", "\u9fbb"), ("\uf900", "\ufa2d"),
              ("\ufa30", "\ufa6a"), ("\ufa70", "\ufad9"), ("\u20000", "\u2a6d6"), ("\u2f800", "\u2fa1d"),
              ("\uff00", "\uffef"), ("\u2e80", "\u2eff"), ("\u3000", "\u303f"), ("\u31c0", "\u31ef"),
              ("\u2f00", "\u2fdf"), ("\u2ff0", "\u2fff"), ("\u3100", "\u312f"), ("\u31a0", "\u31bf"),
              ("\ufe10", "\ufe1f"), ("\ufe30", "\ufe4f"), ("\u2600", "\u26ff"), ("\u2700", "\u27bf"),
              ("\u3200", "\u32ff"), ("\u3300", "\u33ff"))


def _regexp_tokens(line: str) -> list[str]:
  for pattern, repl in _13A_RULES:
    line = pattern.sub(repl, line)
  return line.split()


def bleu_tokens(line: str, lang: str = "en") -> list[str]:
  """`Tokenizer13a` (en) or `TokenizerZh` (zh: every Chinese character, by the ranges above, is its own token)."""
  if lang == "en":
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
      line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    return _regexp_tokens(f" {line} ")
  if lang not in ("zh", "cn"):
    raise ConfigError(f"M4LE BLEU language {lang!r}; accepted: en, zh, cn")
  out = ""
  for ch in line.strip():
    out += f" {ch} " if any(start <= ch <= end for start, end in _ZH_RANGES) else ch
  return _regexp_tokens(out)


def _ngrams(tokens: Sequence[str], max_order: int) -> Counter:
  return Counter(tuple(tokens[i:i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1))


def corpus_bleu(predictions: Sequence[str], references: Sequence, lang: str = "en", max_order: int = 4) -> float:
  """`utils/bleu.py::compute(...)["bleu"]`: corpus BLEU-4 (no smoothing; brevity penalty from the shortest
  reference of each example), 0..1; 0 when the predictions (or references) have no token at all, where the
  official code divides by zero."""
  matches, possible = [0] * max_order, [0] * max_order
  ref_len = hyp_len = 0
  for pred, refs in zip(predictions, references):
    refs = [bleu_tokens(r, lang) for r in ([refs] if isinstance(refs, str) else refs)]
    hyp = bleu_tokens(pred, lang)
    ref_len += min(len(r) for r in refs)
    hyp_len += len(hyp)
    merged: Counter = Counter()
    for r in refs:
      merged |= _ngrams(r, max_order)
    for ngram, count in (_ngrams(hyp, max_order) & merged).items():
      matches[len(ngram) - 1] += count
    for n in range(1, max_order + 1):
      if len(hyp) - n + 1 > 0:
        possible[n - 1] += len(hyp) - n + 1
  if hyp_len == 0 or ref_len == 0:
    return 0.0  # deliberate: the official 1.0 / ratio (or / reference_length) divides by zero here
  precisions = [matches[i] / possible[i] if possible[i] > 0 else 0.0 for i in range(max_order)]
  geo = math.exp(sum(math.log(p) / max_order for p in precisions)) if min(precisions) > 0 else 0
  ratio = hyp_len / ref_len
  return geo * (1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio))


def _m4le(prediction: str, reference, metric: str = "acc", lang: str = "en", end_tokens=(), **kwargs) -> dict:
  """M4LE per-example score; bucket kept for the per-bucket table. cls_f1 cuts the response at `end` and the
  answer only when `cut_answer` (marc_preprocess; the mnds / thucnews / online-shopping preprocessors do not).
  bleu and single_acc keep what their corpus formulas need (their per-example "score" is only indicative)."""
  bucket = kwargs.get("bucket")
  if metric == "cls_f1":
    sep, end = kwargs.get("sep", ","), kwargs.get("end", ".")
    prediction = split_labels(prediction, sep, end)
    reference = split_labels(reference[0], sep, end if kwargs.get("cut_answer", False) else None)
  if metric == "bleu":
    resp = cut_at_end_tokens(prediction, end_tokens)
    return {"score": corpus_bleu([resp], [list(reference)], lang), "bucket": bucket, "metric": "bleu",
            "response": resp, "answers": list(reference), "lang": lang}
  if metric == "single_acc":
    hits = len(set(reference) & set(cut_at_end_tokens(prediction, end_tokens)))  # a str's set: its characters
    return {"score": hits / len(reference), "bucket": bucket, "metric": "single_acc", "hits": hits,
            "total": len(reference)}
  return {"score": m4le_score(prediction, reference, metric, lang, end_tokens), "bucket": bucket}


def _bucket_value(group: Sequence[dict]) -> float:
  kind = group[0].get("metric")
  if kind == "bleu":
    return corpus_bleu([r["response"] for r in group], [r["answers"] for r in group], group[0]["lang"])
  if kind == "single_acc":
    return sum(r["hits"] for r in group) / sum(r["total"] for r in group)
  return sum(r["score"] for r in group) / len(group)


def _by_bucket(rows: Sequence[dict]) -> dict:
  """Per `length_bucket` as `evaluate_by_dict` returns it (mean; bleu: corpus BLEU of the bucket; single_acc: sum
  of hits / sum of answer counts), buckets sorted; "score" is the same over all rows, x100."""
  buckets: dict = {}
  for r in rows:
    buckets.setdefault(r.get("bucket"), []).append(r)
  out = {f"bucket_{b}": _bucket_value(g) for b, g in sorted(buckets.items(), key=lambda kv: str(kv[0]))}
  return {"score": 100 * _bucket_value(list(rows)), **out, "n": len(rows)}


register("m4le.score", _m4le, aggregate=_by_bucket)
