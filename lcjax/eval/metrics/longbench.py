"""LongBench (v1 and -E) official metrics (THUDM/LongBench @2e00731 `LongBench/metrics.py` + `eval.py`), reproduced
with their quirks.

Quirks kept on purpose:
- `classification_score`: the official `if em_match_list != 0` compares a list with 0 and is always true, so the
  difflib fallback never runs and a prediction naming no class scores 0; matches that are substrings of the gold
  class are removed *while iterating the list*, which skips the element after each removal.
- `count_score` / `retrieval_score`: the fraction of all integers in the prediction that equal the answer.
- `code_sim_score`: the first line without a backtick, `#` or `//` is compared with fuzzywuzzy's `fuzz.ratio`.
- `rouge_score`: pltrdy `rouge` ROUGE-L F, and 0.0 whenever the package raises (empty hypothesis, ...).
- The scorer keeps only the first line of predictions for trec/triviaqa/samsum/lsht and takes the max over answers.
"""

from __future__ import annotations

import difflib
import re
from typing import Sequence

from lcjax.eval.metrics.base import register
from lcjax.eval.metrics.text import (counter_f1, jieba_cut, normalize_answer, normalize_zh_answer, pltrdy_rouge,
                                     qa_f1)

FIRST_LINE_TASKS = ("trec", "triviaqa", "samsum", "lsht")


def qa_f1_score(prediction: str, ground_truth: str, **kwargs) -> float:
  """SQuAD-normalised token F1."""
  return qa_f1(prediction, ground_truth)


def qa_f1_zh_score(prediction: str, ground_truth: str, **kwargs) -> float:
  """Token F1 over jieba words, each normalised with the Chinese rule; empty words dropped."""
  pred = [t for t in (normalize_zh_answer(w) for w in jieba_cut(prediction)) if t]
  gold = [t for t in (normalize_zh_answer(w) for w in jieba_cut(ground_truth)) if t]
  return counter_f1(pred, gold)[0]


def rouge_score(prediction: str, ground_truth: str, **kwargs) -> float:
  """pltrdy ROUGE-L F1; 0.0 when the package raises (the official bare `except`)."""
  try:
    return pltrdy_rouge(prediction, ground_truth)["rouge-l"]["f"]
  except Exception:  # noqa: BLE001 - the official code swallows every error here
    return 0.0


def rouge_zh_score(prediction: str, ground_truth: str, **kwargs) -> float:
  """ROUGE-L F1 over jieba words joined by spaces."""
  return rouge_score(" ".join(jieba_cut(prediction)), " ".join(jieba_cut(ground_truth)))


def _fraction_equal(prediction: str, target: str) -> float:
  numbers = re.findall(r"\d+", prediction)
  return 0.0 if not numbers else sum(n == str(target) for n in numbers) / len(numbers)


def count_score(prediction: str, ground_truth: str, **kwargs) -> float:
  """Share of the integers in the prediction equal to the gold count."""
  return float(_fraction_equal(prediction, ground_truth))


def retrieval_score(prediction: str, ground_truth: str, **kwargs) -> float:
  """Share of the integers in the prediction equal to N of the gold "Paragraph N"."""
  return float(_fraction_equal(prediction, re.findall(r"Paragraph (\d+)", ground_truth)[0]))


def retrieval_zh_score(prediction: str, ground_truth: str, **kwargs) -> float:
  """Chinese variant: the gold id comes from "段落N"."""
  return float(_fraction_equal(prediction, re.findall(r"段落(\d+)", ground_truth)[0]))


def code_sim_score(prediction: str, ground_truth: str, **kwargs) -> float:
  """fuzz.ratio / 100 between the first code-looking line of the prediction and the gold line."""
  from fuzzywuzzy import fuzz

  line = ""
  for candidate in prediction.lstrip("\n").split("\n"):
    if "`" not in candidate and "#" not in candidate and "//" not in candidate:
      line = candidate
      break
  return fuzz.ratio(line, ground_truth) / 100


def classification_score(prediction: str, ground_truth: str, all_classes: Sequence[str] = (), **kwargs) -> float:
  """1/len(matches) if the gold class is among the class names found in the prediction (see module quirks)."""
  matches = [c for c in all_classes if c in prediction]
  for term in matches:  # mutating while iterating, as the official loop does
    if term in ground_truth and term != ground_truth:
      matches.remove(term)
  if matches != 0:  # always true (list != int): the official difflib branch is dead code
    return 1.0 / len(matches) if ground_truth in matches else 0.0
  best = max(all_classes, key=lambda c: difflib.SequenceMatcher(None, c, prediction).ratio())  # pragma: no cover
  return float(best == ground_truth)  # pragma: no cover


DATASET2METRIC = {
    "narrativeqa": qa_f1_score, "qasper": qa_f1_score, "multifieldqa_en": qa_f1_score,
    "multifieldqa_zh": qa_f1_zh_score, "hotpotqa": qa_f1_score, "2wikimqa": qa_f1_score, "musique": qa_f1_score,
    "dureader": rouge_zh_score, "gov_report": rouge_score, "qmsum": rouge_score, "multi_news": rouge_score,
    "vcsum": rouge_zh_score, "trec": classification_score, "triviaqa": qa_f1_score, "samsum": rouge_score,
    "lsht": classification_score, "passage_retrieval_en": retrieval_score, "passage_count": count_score,
    "passage_retrieval_zh": retrieval_zh_score, "lcc": code_sim_score, "repobench-p": code_sim_score,
}


def score_example(dataset: str, prediction: str, answers: Sequence[str], all_classes=None) -> float:
  """One example as `eval.py`'s scorer does it: first line for the few-shot tasks, max over the answers."""
  if dataset in FIRST_LINE_TASKS:
    prediction = prediction.lstrip("\n").split("\n")[0]
  fn = DATASET2METRIC[dataset]
  score = 0.0
  for answer in answers:
    score = max(score, fn(prediction, answer, all_classes=all_classes))
  return score


def scorer(dataset: str, predictions: Sequence[str], answers: Sequence[Sequence[str]], all_classes=None) -> float:
  """LongBench v1 corpus score: round(100 * mean, 2)."""
  total = sum(score_example(dataset, p, a, all_classes) for p, a in zip(predictions, answers))
  return round(100 * total / len(predictions), 2)


def _bucket(length: int) -> str:
  return "0-4k" if length < 4000 else "4-8k" if length < 8000 else "8k+"


def bucket_means(scores_by_bucket: dict) -> dict:
  """round(100 * np.mean(bucket), 2) per bucket (np.mean's pairwise summation; NaN for an empty bucket)."""
  import numpy as np

  with np.errstate(invalid="ignore", divide="ignore"):
    return {k: round(100 * float(np.mean(v)), 2) if v else float("nan") for k, v in scores_by_bucket.items()}


def scorer_e(dataset: str, predictions: Sequence[str], answers, lengths: Sequence[int], all_classes=None) -> dict:
  """LongBench-E: the same per-example scores bucketed by the example's `length` (words) into 0-4k, 4-8k, 8k+,
  averaged with `np.mean` as `eval.py` does (an empty bucket is NaN, as `np.mean([])` makes it)."""
  buckets: dict[str, list[float]] = {"0-4k": [], "4-8k": [], "8k+": []}
  for p, a, n in zip(predictions, answers, lengths):
    buckets[_bucket(n)].append(score_example(dataset, p, a, all_classes))
  return bucket_means(buckets)


def _e_aggregate(rows: Sequence[dict]) -> dict:
  """LongBench-E buckets from rows carrying their `length`; "score" is the mean over all rows, round(100 * np.mean)."""
  import numpy as np

  buckets: dict[str, list[float]] = {"0-4k": [], "4-8k": [], "8k+": []}
  for r in rows:
    buckets[_bucket(r["length"])].append(float(r["score"]))
  out = bucket_means(buckets)
  score = round(100 * float(np.mean([float(r["score"]) for r in rows])), 2) if rows else 0.0
  return {"score": score, **out, "n": len(rows)}


def _registered(dataset: str):
  def fn(prediction: str, answers, all_classes=None, **kwargs) -> float:
    return score_example(dataset, prediction, [answers] if isinstance(answers, str) else answers, all_classes)

  fn.__doc__ = f"LongBench {dataset}: {DATASET2METRIC[dataset].__doc__.splitlines()[0]}"
  return fn


def _registered_e(dataset: str):
  single = _registered(dataset)

  def fn(prediction: str, answers, all_classes=None, length: int = 0, **kwargs) -> dict:
    return {"score": single(prediction, answers, all_classes), "length": int(length or 0)}

  fn.__doc__ = f"LongBench-E {dataset}: {DATASET2METRIC[dataset].__doc__.splitlines()[0]} (length buckets)"
  return fn


for _name in DATASET2METRIC:
  register(f"longbench.{_name}", _registered(_name))
  register(f"longbench_e.{_name}", _registered_e(_name), aggregate=_e_aggregate)
