"""SCBench official scorers (microsoft/MInference `scbench/compute_scores.py`, InfiniteBench-derived).

Each SCBench task maps to an InfiniteBench scorer: kv retrieval / hashhop / prefix-suffix -> label substring;
passkey -> the first integer run equals the label; math_find -> the first number (int or float as the label);
choice -> first-letter / "answer is" / first A-D word rules; qa_eng -> any label (uppercased) in the response;
qa_chn -> character F1; vt -> string_match_all rounded to 2; many_shot -> qa_eng rule. Summaries use HF
`evaluate`'s rougeLsum, which needs NLTK data: not provided (ImplUnavailableError).
"""

from __future__ import annotations

import re
from collections import Counter

from lcjax.errors import ImplUnavailableError
from lcjax.eval.metrics.base import register
from lcjax.eval.metrics.text import normalize_zh_answer


def first_int_match(prediction: str) -> str:
  """The first run of digits ("" if none)."""
  return next((x for x in re.split("[^0-9]", prediction) if x != ""), "")


def _first(label):
  return label[0] if isinstance(label, list) else label


def kv_retrieval(pred: str, label) -> float:
  """The label is a substring of the prediction."""
  return float(_first(label) in pred)


def passkey(pred: str, label) -> float:
  """The first integer of the prediction equals the label."""
  return float(str(_first(label)) == first_int_match(pred))


def math_find(pred: str, label) -> float:
  """The first number in the prediction equals the label (int(float(x)) for int labels)."""
  label = _first(label)
  found = re.search(r"\d+\.\d+|\d+", pred)
  if found is None:
    return 0.0
  if isinstance(label, int):
    return float(int(float(found.group(0))) == label)
  return float(float(found.group(0)) == float(label))


def choice_eng(pred: str, label) -> float:
  """InfiniteBench `longbook_choice_eng`: first char, answer prefixes, then the first A-D word."""
  labels = label if isinstance(label, list) else [label]
  pred = pred.strip()
  if pred == "":
    return 0.0
  if pred[0] in "ABCD":
    return float(pred[0] in labels)
  if pred in labels:
    return 1.0
  for c in ["\n", '"', "'", ".", ",", "?", "!", "{", "}"]:
    pred = pred.replace(c, " ")
  while "  " in pred:
    pred = pred.replace("  ", " ")
  for prefix in ("answer is:", "answer:", "answer is", "option is"):
    idx = pred.find(prefix)
    if idx == -1:
      continue
    if len(pred) < idx + len(prefix) + 1:
      return 0.0
    after = pred[idx + len(prefix) + 1:]
    return float(any(after.startswith(s) for s in labels))
  for word in pred.split():
    if word in "ABCD":
      return float(word in labels)
  return 0.0


def qa_eng(pred: str, label) -> float:
  """Any label (uppercased) appears in the uppercased prediction."""
  labels = label if isinstance(label, list) else [label]
  return float(any(str(x).upper() in pred.strip().upper() for x in labels))


def qa_chn(pred: str, label) -> float:
  """Character-level F1 after Chinese normalisation, max over labels."""
  labels = label if isinstance(label, list) else [label]
  best = 0.0
  for gold in labels:
    p, g = list(normalize_zh_answer(pred)), list(normalize_zh_answer(gold))
    same = sum((Counter(p) & Counter(g)).values())
    if same:
      precision, recall = same / len(p), same / len(g)
      best = max(best, 2 * precision * recall / (precision + recall))
  return best


def vt(pred: str, label) -> float:
  """string_match_all rounded to 2 decimals."""
  labels = label if isinstance(label, list) else [label]
  return round(sum(1.0 if r.lower() in pred.lower() else 0.0 for r in labels) / len(labels), 2)


def summary(pred: str, label) -> float:  # pragma: no cover - raises
  """rougeLsum via HF evaluate: needs NLTK punkt data, which lcjax does not download."""
  raise ImplUnavailableError("SCBench summary uses HF evaluate's rougeLsum (NLTK punkt data); not available offline")


SCORERS = {"scbench_kv": kv_retrieval, "scbench_kv_hard": kv_retrieval, "scbench_hashhop": kv_retrieval,
           "scbench_prefix_suffix": kv_retrieval, "scbench_kv_compressible": kv_retrieval,
           "scbench_passkey": passkey, "scbench_mf": math_find, "scbench_choice_eng": choice_eng,
           "scbench_qa_eng": qa_eng, "scbench_qa_chn": qa_chn, "scbench_vt": vt, "scbench_many_shot": qa_eng,
           "scbench_summary": summary}


def _scbench(prediction: str, reference, task: str = "scbench_kv", **kwargs) -> float:
  """SCBench per-turn score with the task's InfiniteBench scorer."""
  return SCORERS[task](prediction, reference)


register("scbench.score", _scbench)
