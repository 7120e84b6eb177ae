"""L-CiteEval official metrics (ZetangForward/L-CITEEVAL @6e49326 `script/eval_citation.py`, `eval_correct.py`).
Inputs on which the official scripts crash score 0 here (see below).

Citation quality:
- NIAH (rule-based): the gold passage is the first one containing the answer; only the first line of the
  generation counts; citations `[k` (1-based) up to `at_most_citations` (3); recall 1 if the gold is cited,
  precision 1/len(cited), F1 accordingly, all 0 otherwise.
- Counting stars (rule-based): gold passages are those with "The little penguin counted N ★" (1-based ids); the
  generation's first {...} is parsed as JSON; recall / precision / F1 of the deduplicated `passage_id` list; a
  parse failure scores 0 (and, as in the official code, a JSON without `passage_id` scores 0 too). Deliberate
  difference: an empty `passage_id` list makes the official code divide by zero; lcjax scores it 0.
- Other tasks (model-based AutoAIS): sentences of the generation are checked with an NLI model (the official one is
  tasksource/deberta-base-long-nli): recall = share of sentences entailed by their cited passages; precision counts
  citations that are needed (a cited passage either entails the sentence alone or its removal breaks entailment).
  `autoais` takes the NLI as a callable, so any entailment model can be plugged in; lcjax ships none (no weights).
Correctness: QA tasks use LongBench-style token F1 of the first line with citations removed; NIAH uses ROUGE-1
recall of the pltrdy package; summarisation (qmsum, gov_report, multi_news) uses pltrdy ROUGE-L F of the first
line (after "summary...:" when present) with citations removed; counting stars uses the share of gold counts found
in `little_penguin`. Corpus numbers are round(100 * sum / n, 2).
"""

from __future__ import annotations

import json
import re
from typing import Callable, Sequence

from lcjax.eval.metrics.base import register
from lcjax.eval.metrics.text import counter_f1, normalize_answer, pltrdy_rouge

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def remove_citations(sentence: str) -> str:
  """Drops " [k", "[k", " |" and "]" (the official regex chain)."""
  return re.sub(r"\[\d+", "", re.sub(r" \[\d+", "", sentence)).replace(" |", "").replace("]", "")


def cited_ids(text: str, at_most: int | None = 3) -> list[int]:
  """0-based passage ids of the `[k` citations in `text`, at most `at_most`."""
  return [int(r[1:]) - 1 for r in re.findall(r"\[\d+", text)][:at_most]


def first_line(generation: str) -> str:
  """The stripped generation up to its first newline."""
  text = generation.strip()
  return text[:text.index("\n")] if "\n" in text else text


def niah_citation(generation: str, answer: str, docs: Sequence[str], at_most: int = 3) -> dict:
  """Rule-based citation recall / precision / F1 for L-CiteEval NIAH."""
  gold = next((j for j, d in enumerate(docs) if answer in d), None)
  ref = cited_ids(first_line(generation), at_most)
  if gold is not None and gold in ref:
    p = 1 / len(ref)
    return {"recall": 1.0, "precision": p, "f1": 2 * p / (1 + p), "cite_num": len(ref)}
  return {"recall": 0.0, "precision": 0.0, "f1": 0.0, "cite_num": len(ref)}


def _penguin_gold(docs: Sequence[str]) -> tuple[list[int], list[int]]:
  ids, counts = [], []
  for j, d in enumerate(docs):
    if "The little penguin counted" in d:
      ids.append(j + 1)
      counts.append(int(re.search(r"The little penguin counted (\d+) ★", d).group(1)))
  return ids, counts


def _first_json(generation: str):
  text = generation.strip()
  return json.loads(text[text.index("{"):text.index("}") + 1])


def counting_stars_citation(generation: str, docs: Sequence[str]) -> dict:
  """Rule-based citation recall / precision / F1 for L-CiteEval counting stars."""
  gold_ids, _ = _penguin_gold(docs)
  zero = {"recall": 0.0, "precision": 0.0, "f1": 0.0, "cite_num": 0}
  try:
    answer = _first_json(generation)
  except (ValueError, json.JSONDecodeError):
    return zero
  if not isinstance(answer, dict) or "passage_id" not in answer:
    return zero
  cited = list(set(answer["passage_id"]))
  if not cited:
    return zero  # the official code divides by zero here
  correct = sum(1 for c in cited if c in gold_ids)
  precision, recall = correct / len(cited), correct / len(gold_ids)
  f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
  return {"recall": recall, "precision": precision, "f1": f1, "cite_num": len(cited)}


def counting_stars_accuracy(generation: str, docs: Sequence[str]) -> float:
  """Share of the gold counts found among the first len(gold) `little_penguin` values (0..1)."""
  _, gold = _penguin_gold(docs)
  try:
    answer = _first_json(generation)
    values = list(answer["little_penguin"])[:len(gold)]
  except (ValueError, KeyError, TypeError, json.JSONDecodeError):
    return 0.0
  return sum(1 for v in values if v in gold) / len(gold)


def split_sentences(text: str) -> list[str]:
  """Rule-based sentence splitter (on ". ! ?" followed by whitespace and a capital/digit/bracket). The official code
  uses NLTK punkt, whose data lcjax does not download; pass your own splitter to `autoais` to use it."""
  return [s for s in (x.strip() for x in _SENTENCE.split(text.strip())) if s]


def autoais(generation: str, docs: Sequence, nli: Callable[[str, str], int],
            at_most: int = 3, splitter: Callable[[str], list[str]] = split_sentences) -> dict:
  """Model-based citation recall / precision / F1 of one generation (the official `compute_autoais` loop).

  Args:
    nli: (premise passage, claim) -> 1 if entailed else 0.
  """
  fmt = lambda d: f"Title: {d['title']}\nPassage: {d['text']}" if isinstance(d, dict) else f"Passage: {d}"  # noqa
  sents = splitter(generation)
  if not sents:
    return {"recall": 0.0, "precision": 0.0, "f1": 0.0, "cite_num": 0}
  entail = entail_prec = total = 0
  for sent in sents:
    target = remove_citations(sent).strip()
    ref = [int(r[1:]) - 1 for r in re.findall(r"\[\d+", sent)]
    if not ref or any(r >= len(docs) for r in ref):
      continue  # joint_entail = 0
    ref = ref[:at_most]
    total += len(ref)
    joint = nli("\n".join(fmt(docs[r]) for r in ref), target)
    entail += joint
    if joint and len(ref) > 1:
      for r in ref:
        if nli(fmt(docs[r]), target):
          entail_prec += 1
          continue
        rest = _remove_first(ref, r)  # list.remove drops the first occurrence only
        if not nli("\n".join(fmt(docs[x]) for x in rest), target):
          entail_prec += 1
    else:
      entail_prec += joint
  recall = entail / len(sents)
  precision = entail_prec / total if total else 0.0
  f1 = 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
  return {"recall": recall, "precision": precision, "f1": f1, "cite_num": total}


def _remove_first(ref: list[int], r: int) -> list[int]:
  out = list(ref)
  out.remove(r)
  return out


def qa_correctness(generation: str, answer) -> dict:
  """L-CiteEval QA correctness: token F1 / precision / recall of the first line, citations removed, max over
  answers (each maximised separately, as the official loop does)."""
  pred = normalize_answer(remove_citations(first_line(generation))).split()
  answers = [answer] if isinstance(answer, (str, int)) else answer
  best = [0.0, 0.0, 0.0]
  for a in answers:
    f1, p, r = counter_f1(pred, normalize_answer(str(a)).split())
    best = [max(best[0], f1), max(best[1], p), max(best[2], r)]
  return {"f1": best[0], "precision": best[1], "recall": best[2]}


def niah_correctness(generation: str, answer: str) -> float:
  """L-CiteEval NIAH correctness: pltrdy ROUGE-1 recall of the first line with citations removed."""
  return pltrdy_rouge(remove_citations(first_line(generation)), answer)["rouge-1"]["r"]


def summary_answer(generation: str) -> str | None:
  """The summary text `eval_correct.py` scores: after the first ":" when "summary" occurs in the first 100
  characters (None when there is no ":": the example is skipped, i.e. scores 0), first line, citations removed."""
  text = generation.strip()
  if "summary" in text[:100].lower():
    if ":" not in text:
      return None
    text = text[text.index(":") + 1:].strip()
  return remove_citations(first_line(text))


def summary_correctness(generation: str, answer) -> float:
  """L-CiteEval summarisation correctness (qmsum, gov_report, multi_news): pltrdy ROUGE-L F of `summary_answer`,
  max over answers; 0 for an empty answer text. Deliberate difference: where the rouge package raises (e.g. a
  hypothesis of punctuation only) the official code then crashes on the 0.0 it returns; lcjax scores 0."""
  text = summary_answer(generation)
  if not text:
    return 0.0
  best = 0.0
  for a in ([answer] if isinstance(answer, str) else answer):
    try:
      best = max(best, pltrdy_rouge(text, a)["rouge-l"]["f"])
    except (ValueError, RecursionError):
      continue
  return best


def _niah(prediction: str, reference: dict, **kwargs) -> dict:
  """L-CiteEval NIAH: citation F1 (score) with recall / precision and ROUGE-1 recall correctness."""
  cite = niah_citation(prediction, reference["answer"], reference["docs"])
  try:
    correct = niah_correctness(prediction, reference["answer"])
  except ValueError:  # empty hypothesis: the official code crashes
    correct = 0.0
  return {"score": cite["f1"], "cite_recall": cite["recall"], "cite_precision": cite["precision"],
          "correctness": correct}


def _counting(prediction: str, reference: dict, **kwargs) -> dict:
  """L-CiteEval counting stars: citation F1 (score), recall / precision and count accuracy."""
  cite = counting_stars_citation(prediction, reference["docs"])
  return {"score": cite["f1"], "cite_recall": cite["recall"], "cite_precision": cite["precision"],
          "correctness": counting_stars_accuracy(prediction, reference["docs"])}


def _qa(prediction: str, reference: dict, **kwargs) -> dict:
  """L-CiteEval QA correctness F1 (citation quality needs an NLI model: see `autoais`)."""
  out = qa_correctness(prediction, reference["answer"])
  return {"score": out["f1"], "correctness": out["f1"]}


def _aggregate(rows: Sequence[dict]) -> dict:
  out = {k: round(100 * sum(r[k] for r in rows) / len(rows), 2)
         for k in rows[0] if k in ("score", "cite_recall", "cite_precision", "correctness")}
  return {**out, "n": len(rows)}


register("citeeval.niah", _niah, aggregate=_aggregate)
register("citeeval.counting_stars", _counting, aggregate=_aggregate)
register("citeeval.qa", _qa, aggregate=_aggregate)


def _summary(prediction: str, reference: dict, **kwargs) -> dict:
  """L-CiteEval summarisation correctness: ROUGE-L F (citation quality needs an NLI model: see `autoais`)."""
  score = summary_correctness(prediction, reference["answer"])
  return {"score": score, "correctness": score}


register("citeeval.summary", _summary, aggregate=_aggregate)
