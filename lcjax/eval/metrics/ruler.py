"""RULER official metrics (NVIDIA/RULER @c3f5e3b `scripts/eval/synthetic/constants.py`, `evaluate.py`) and LongIns'
set F1 (Ins-Bench/LongIns-Bench `eval.py`).

RULER: predictions are post-processed (stripped, control characters -> newline, stripped again); `string_match_all`
is the share of references found case-insensitively as substrings, `string_match_part` is 1 if any is found; the
task score is round(sum / n * 100, 2) (in that order: 23/160 gives 14.37, not 14.38).

LongIns: every `[...]` group of the response (deduplicated as strings) contributes all its integers; the score is
the F1 between that set and the set of wrongly answered question ids (0 when either set is empty of matches).
"""

from __future__ import annotations

import re
from typing import Sequence

from lcjax.eval.metrics.base import register


def postprocess_pred(prediction: str) -> str:
  """RULER `postprocess_pred`."""
  return re.sub(r"[\x00-\x1f]", "\n", prediction.strip()).strip()


def string_match_all_one(prediction: str, references: Sequence[str]) -> float:
  """Share of references contained (case-insensitively) in the prediction."""
  pred = prediction.lower()
  return sum(1.0 if r.lower() in pred else 0.0 for r in references) / len(references)


def string_match_part_one(prediction: str, references: Sequence[str]) -> float:
  """1 if any reference is contained (case-insensitively) in the prediction."""
  pred = prediction.lower()
  return max(1.0 if r.lower() in pred else 0.0 for r in references)


def string_match_all(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
  """RULER corpus score: round(100 * mean string_match_all, 2)."""
  return round(sum(string_match_all_one(p, r) for p, r in zip(preds, refs)) / len(preds) * 100, 2)


def string_match_part(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
  """RULER corpus score: round(100 * mean string_match_part, 2)."""
  return round(sum(string_match_part_one(p, r) for p, r in zip(preds, refs)) / len(preds) * 100, 2)


def longins_extract(response: str) -> list[int]:
  """Integers inside the response's bracket groups (LongIns `re.findall(r'\\[(.*?)\\]')` then `\\d+`)."""
  found: list[int] = []
  for group in set(re.findall(r"\[(.*?)\]", response)):
    found += [int(n) for n in re.findall(r"\d+", group)]
  return found


def set_f1(pred: Sequence[int], gold: Sequence[int]) -> float:
  """LongIns `calculate_f1_score` on sets: 0 when there is no prediction or no gold, else F1 of TP/FP/FN."""
  p, g = set(pred), set(gold)
  tp, fp, fn = len(p & g), len(p - g), len(g - p)
  if tp + fp == 0 or tp + fn == 0:
    return 0.0
  precision, recall = tp / (tp + fp), tp / (tp + fn)
  return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _as_list(references) -> list[str]:
  return [references] if isinstance(references, str) else [str(r) for r in references]


def _all(prediction: str, references, **kwargs) -> float:
  """RULER string_match_all on the post-processed prediction."""
  return string_match_all_one(postprocess_pred(prediction), _as_list(references))


def _part(prediction: str, references, **kwargs) -> float:
  """RULER string_match_part on the post-processed prediction."""
  return string_match_part_one(postprocess_pred(prediction), _as_list(references))


def _longins(prediction: str, references, **kwargs) -> float:
  """LongIns set F1 between bracketed ids in the response and the wrong-answer ids."""
  return set_f1(longins_extract(prediction), references)


def ruler_aggregate(rows: Sequence[dict]) -> dict:
  """RULER's corpus score: round(sum / n * 100, 2) (the division before the x100, as `constants.py` writes it)."""
  if not rows:
    return {"score": 0.0, "n": 0}
  return {"score": round(sum(float(r["score"]) for r in rows) / len(rows) * 100, 2), "n": len(rows)}


register("ruler.string_match_all", _all, aggregate=ruler_aggregate)
register("ruler.string_match_part", _part, aggregate=ruler_aggregate)
register("longins.f1", _longins, aggregate=lambda rows: {"score": sum(r["score"] for r in rows) / len(rows),
                                                          "n": len(rows)})
