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
Buckets are averaged separately by `length_bucket`, as the official table reports them.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

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


def _m4le(prediction: str, reference, metric: str = "acc", lang: str = "en", end_tokens=(), **kwargs) -> dict:
  """M4LE per-example score; bucket kept for the per-bucket table. cls_f1 cuts the response at `end` and the
  answer only when `cut_answer` (marc_preprocess; the mnds / thucnews / online-shopping preprocessors do not)."""
  if metric == "cls_f1":
    sep, end = kwargs.get("sep", ","), kwargs.get("end", ".")
    prediction = split_labels(prediction, sep, end)
    reference = split_labels(reference[0], sep, end if kwargs.get("cut_answer", False) else None)
  return {"score": m4le_score(prediction, reference, metric, lang, end_tokens), "bucket": kwargs.get("bucket")}


def _by_bucket(rows: Sequence[dict]) -> dict:
  buckets: dict = {}
  for r in rows:
    buckets.setdefault(r.get("bucket"), []).append(r["score"])
  out = {f"bucket_{b}": sum(v) / len(v) for b, v in sorted(buckets.items(), key=lambda kv: str(kv[0]))}
  return {"score": 100 * sum(r["score"] for r in rows) / len(rows), **out, "n": len(rows)}


register("m4le.score", _m4le, aggregate=_by_bucket)
