"""Rule-based metrics of the synthetic generators that have no released scorer we can reproduce verbatim.

- Needle Threading (Roberts et al., 2024): accuracy of retrieved values; for several keys/threads, the share of the
  gold values (UUIDs) present in the response (exact UUID strings; UUIDs never collide with other text).
- LongGenBench (Liu et al., 2024): K questions answered in one long response; the response is split at
  "Answer <i>:" markers and each answer's last number is compared with the gold (GSM8K `####` answer, commas
  removed); the per-example score is the share of questions answered correctly.
- HoloBench (Maekawa et al., 2024): the gold of each query is computed by DuckDB; the answer after the last
  "Answer:" is compared with it: numbers within 1% relative tolerance, lists as set F1 over normalised items (an
  empty gold list is matched by an empty answer or "none"). (The
  paper grades with an LLM judge; this is the deterministic rule that judge approximates, documented as such.)
"""

from __future__ import annotations

import re
from typing import Sequence

from lcjax.eval.metrics.base import register

_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def threading_score(prediction: str, values: Sequence[str]) -> float:
  """Share of gold values found in the prediction."""
  return sum(v in prediction for v in values) / len(values)


def last_number(text: str) -> float | None:
  """The last number in `text` (commas dropped), or None."""
  found = _NUMBER.findall(text)
  if not found:
    return None
  try:
    return float(found[-1].replace(",", "").rstrip("."))
  except ValueError:
    return None


def split_answers(response: str) -> dict[int, str]:
  """{i: text of "Answer i:" up to the next marker} (1-based question ids, first occurrence wins)."""
  marks = list(re.finditer(r"Answer\s*(\d+)\s*:", response))
  out: dict[int, str] = {}
  for m, nxt in zip(marks, marks[1:] + [None]):
    out.setdefault(int(m.group(1)), response[m.end():nxt.start() if nxt else len(response)])
  return out


def longgen_score(prediction: str, answers: Sequence[float]) -> dict:
  """Share of the K questions whose answer segment ends with the gold number."""
  parts = split_answers(prediction)
  correct = [parts.get(i + 1) is not None and last_number(parts[i + 1]) == float(a) for i, a in enumerate(answers)]
  return {"score": sum(correct) / len(answers), "correct": correct}


def _norm_item(x) -> str:
  return " ".join(re.sub(r"[^\w\s.-]", " ", str(x).lower()).split())


def _close(a: float, b: float) -> bool:
  return abs(a - b) <= 0.01 * max(abs(b), 1e-9) or abs(a - b) < 1e-6


def holo_score(prediction: str, gold) -> float:
  """HoloBench rule: scalar within 1% (numbers) or normalised equality; lists by set F1."""
  answer = prediction.split("Answer:")[-1].strip().split("\n")[0]
  if isinstance(gold, (list, tuple)):
    items = [_norm_item(x) for x in re.split(r"[,;]", answer) if _norm_item(x)]
    ref = {_norm_item(x) for x in gold}
    pred = set(items) - {"none"}
    if not ref:  # nothing qualifies: right iff nothing (or "none") is listed
      return float(not pred)
    tp = len(pred & ref)
    if not tp:
      return 0.0
    precision, recall = tp / len(pred), tp / len(ref)
    return 2 * precision * recall / (precision + recall)
  if isinstance(gold, (int, float)):
    value = last_number(answer)
    return float(value is not None and _close(value, float(gold)))
  return float(_norm_item(gold) in _norm_item(answer))


register("threading.accuracy", lambda p, r, **k: threading_score(p, [r] if isinstance(r, str) else r))
register("longgenbench.accuracy", lambda p, r, **k: longgen_score(p, r))
register("holobench.accuracy", lambda p, r, **k: holo_score(p, r))
