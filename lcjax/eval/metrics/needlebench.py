"""NeedleBench official evaluators (open-compass/opencompass @a5acc4b: v1 `datasets/needlebench/{origin,multi,
parallel}.py`, v2 `datasets/needlebench_v2/{origin,parallel,atc_elder_only}.py`).

v1 (the default of lcjax's `needlebench.*` tasks, and what the NeedleBench paper's tables use):
- Origin (single-needle retrieval): whitespace is removed from prediction and reference, the score is
  100 * (1 - levenshtein / max_len), optionally after trimming the prediction to ~the reference length; then the
  keyword overrides it: 100 if the keyword occurs in the *raw* prediction, else 0.2 * score.
- Multi (multi-needle reasoning): the answer's lowercased words are keywords; score = 100 * matched / count.
- Parallel (multi-needle retrieval): each needle's keyword found in the prediction adds 100/N to its depth (needles
  sharing a depth add up; the depths are the first example's); the score is the mean over distinct depths.
v2 (OpenCompass's current evaluators; the `needlebench_v2.*` metrics, for a task's examples as they are):
- Origin: 100 if the keyword occurs in the raw prediction, else 0 (no edit-distance partial credit).
- Parallel: unchanged from v1.
- Multi-needle reasoning and ATC: the last `\\boxed{...}` of the prediction, cleaned (LaTeX \\text/\\boxed
  unwrapped, backslashes, quotes and extra spaces dropped, "~" -> " "), must equal the answer (the eldest
  ancestor's name); "None" when there is no box.
"""

from __future__ import annotations

import re
from typing import Sequence

from lcjax.eval.metrics.base import mean_raw, register


def levenshtein_distance(s1: str, s2: str) -> int:
  """Edit distance with unit insert/delete/substitute costs (the evaluator's dynamic programme)."""
  if len(s1) < len(s2):
    s1, s2 = s2, s1
  if not s2:
    return len(s1)
  previous = list(range(len(s2) + 1))
  for i, c1 in enumerate(s1):
    current = [i + 1]
    for j, c2 in enumerate(s2):
      current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (c1 != c2)))
    previous = current
  return previous[-1]


def trim_prediction(prediction: str, reference: str) -> str:
  """`_trim_prediction`: keep 1.2x the reference length, cut after the reference's last char past 0.8x."""
  l08, l12 = int(0.8 * len(reference)), int(1.2 * len(reference))
  trimmed = prediction[:l12]
  if len(trimmed) > l08 and reference[-1] in trimmed[l08:]:
    trimmed = trimmed[:l08 + trimmed[l08:].index(reference[-1]) + 1]
  return trimmed


def origin_score(prediction: str, needle: str, keyword: str, use_trim: bool = False) -> float:
  """NeedleBench single-needle score in 0..100 (keyword override, else 0.2 x Levenshtein similarity)."""
  raw = prediction
  pred = re.sub(r"\s+", "", prediction)
  ref = re.sub(r"\s+", "", needle)
  if use_trim:
    pred = trim_prediction(pred, ref)
  longest = max(len(pred), len(ref))
  score = 100 * (1 - levenshtein_distance(pred, ref) / longest) if longest else 100
  return 100.0 if keyword in raw else 0.2 * score


def multi_keyword_score(prediction: str, answer: str) -> float:
  """NeedleBench multi-needle reasoning: 100 x share of the answer's lowercased words found in the prediction."""
  keywords = answer.lower().split()
  if not keywords:
    return 0.0
  pred = prediction.lower()
  return sum(1 for k in keywords if k in pred) * (100 / len(keywords))


def parallel_scores(predictions: Sequence[str], keywords: Sequence[Sequence[str]], depths: Sequence[int]) -> dict:
  """NeedleBench multi-needle retrieval over a corpus: {"Depth<d>": score, ..., "average_score": mean}."""
  return parallel_from_hits([[kw in p for kw in kws] for p, kws in zip(predictions, keywords)], depths)


def parallel_from_hits(hits: Sequence[Sequence[bool]], depths: Sequence[int]) -> dict:
  """`NeedleBenchParallelEvaluator.score` from per-example keyword hits: every hit adds 100 / N to its depth, so
  needles sharing a depth add up; depths come from the first example; the average is over distinct depths."""
  by_depth = {d: 0 for d in depths}
  for row in hits:
    for hit, d in zip(row, depths):
      if hit:
        by_depth[d] += 100 / len(hits)
  out = {f"Depth{d}": s for d, s in by_depth.items()}
  out["average_score"] = sum(by_depth.values()) / len(by_depth)
  return out


def last_boxed_only_string(text: str) -> str | None:
  """The last `\\boxed{...}` (or `\\fbox{...}`) with balanced braces, or None."""
  idx = text.rfind("\\boxed")
  if idx < 0:
    idx = text.rfind("\\fbox")
    if idx < 0:
      return None
  depth = 0
  for i in range(idx, len(text)):
    if text[i] == "{":
      depth += 1
    elif text[i] == "}":
      depth -= 1
      if depth == 0:
        return text[idx:i + 1]
  return None


def extract_boxed_answer(text: str, strip_double_curly_brace: bool = False) -> str | None:
  """Content of the last box ("\\fbox{x}" gives None, as `remove_boxed` only knows "\\boxed{")."""
  boxed = last_boxed_only_string(text)
  if boxed is None or not boxed.startswith("\\boxed{") or not boxed.endswith("}"):
    return None
  answer = boxed[len("\\boxed{"):-1]
  if strip_double_curly_brace:
    match = re.match(r"^\{(.*)\}$", answer)
    if match:
      answer = match.group(1)
  return answer


def clean_atc_answer(text: str) -> str:
  """`clean_atc_answer`: unwrap \\text{}/\\boxed{}, drop \\[ \\] and backslashes, squeeze spaces, drop quotes."""
  if not text or text == "None":
    return "None"
  text = re.sub(r"\\text\{([^}]+)\}", r"\1", text)
  text = re.sub(r"\\boxed\{([^}]+)\}", r"\1", text)
  text = re.sub(r"\\[\[\]]", "", text)
  text = text.replace("\\\\", "").replace("\\", "")
  text = re.sub(r"\s+", " ", text).strip()
  text = text.replace('"', "").replace("'", "")
  return text.replace("~", " ")


def atc_postprocess(text: str) -> str:
  """`needlebench_atc_postprocess_v2`: the cleaned boxed answer, or "None"."""
  answer = extract_boxed_answer(text, strip_double_curly_brace=True)
  return clean_atc_answer(answer) if answer else "None"


def atc_score(prediction: str, reference: str, **kwargs) -> float:
  """ATC: 100 if the post-processed boxed answer equals the reference name (stripped), else 0."""
  return 100.0 if atc_postprocess(prediction).strip() == reference.strip() else 0.0


def _origin(prediction: str, reference: dict, **kwargs) -> float:
  """NeedleBench single-needle retrieval score (0..100)."""
  return origin_score(prediction, reference["needle"], reference["keyword"], kwargs.get("use_trim", False))


def _multi(prediction: str, reference: str, **kwargs) -> float:
  """NeedleBench multi-needle reasoning keyword score (0..100)."""
  return multi_keyword_score(prediction, reference)


def _parallel(prediction: str, reference: dict, **kwargs) -> dict:
  """NeedleBench multi-needle retrieval: per-needle keyword hits (corpus: mean over depths)."""
  hits = [kw in prediction for kw in reference["keywords"]]
  return {"score": 100.0 * sum(hits) / len(hits), "hits": hits, "depths": list(reference["depths"])}


def _parallel_aggregate(rows: Sequence[dict]) -> dict:
  out = parallel_from_hits([r["hits"] for r in rows], rows[0]["depths"])
  return {**out, "score": out["average_score"], "n": len(rows)}


def origin_score_v2(prediction: str, needle: str, keyword: str) -> float:
  """NeedleBench v2 single-needle score: 100 if the keyword occurs in the raw prediction, else 0 (no edit-distance
  partial credit)."""
  return 100.0 if keyword in prediction else 0.0


def _origin_v2(prediction: str, reference: dict, **kwargs) -> float:
  """NeedleBench v2 single-needle retrieval score (0 or 100)."""
  return origin_score_v2(prediction, reference["needle"], reference["keyword"])


register("needlebench.origin", _origin, aggregate=mean_raw)
register("needlebench.multi", _multi, aggregate=mean_raw)
register("needlebench.parallel", _parallel, aggregate=_parallel_aggregate)
def _accuracy_aggregate(rows: Sequence[dict]) -> dict:
  """`NeedleBenchATCEvaluator`: (correct / n) * 100, the division first."""
  if not rows:
    return {"score": 0, "n": 0}
  return {"score": (sum(1 for r in rows if r["score"] == 100.0) / len(rows)) * 100, "n": len(rows)}


register("needlebench.atc", atc_score, aggregate=_accuracy_aggregate)
register("needlebench.atc_v1", lambda prediction, reference, **kw: origin_score(prediction, reference, reference),
         aggregate=mean_raw, doc="NeedleBench v1 ATC: the origin evaluator, eldest ancestor as needle and keyword")
register("needlebench_v2.origin", _origin_v2, aggregate=mean_raw)
register("needlebench_v2.parallel", _parallel, aggregate=_parallel_aggregate)
register("needlebench_v2.multi", atc_score, aggregate=_accuracy_aggregate,
         doc="NeedleBench v2 multi-needle reasoning: the ATC evaluator on the post-processed boxed answer")
