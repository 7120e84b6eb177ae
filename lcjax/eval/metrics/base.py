"""The metric registry and the shared aggregation rules.

A metric scores one prediction against one example's reference and returns a dict with at least "score" (the
per-example value in the official code's unit, usually 0..1); `aggregate` turns the list of per-example dicts into
the official corpus number(s). Most benchmarks report `round(100 * mean, 2)` (LongBench, RULER, L-CiteEval);
corpus-level metrics (micro-F1, NDCG) bring their own aggregate.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from lcjax.registry import Registry


def mean_percent(rows: Sequence[dict], key: str = "score", digits: int | None = 2) -> dict:
  """{"score": round(100 * mean(row[key]), digits)}; 0.0 for no rows (the official scripts divide by zero there)."""
  if not rows:
    return {"score": 0.0, "n": 0}
  value = 100.0 * sum(float(r[key]) for r in rows) / len(rows)
  return {"score": round(value, digits) if digits is not None else value, "n": len(rows)}


def mean_raw(rows: Sequence[dict], key: str = "score") -> dict:
  """{"score": mean(row[key])} for metrics already on a 0..100 scale (NeedleBench, L-Eval exam)."""
  if not rows:
    return {"score": 0.0, "n": 0}
  return {"score": sum(float(r[key]) for r in rows) / len(rows), "n": len(rows)}


@dataclasses.dataclass(frozen=True)
class Metric:
  """A registered metric.

  Attributes:
    fn: (prediction, reference, **example.metric_kwargs) -> float or dict with "score".
    aggregate: list of per-example dicts -> corpus dict with "score".
    higher_is_better: for plots and tables.
  """

  fn: Callable[..., Any]
  aggregate: Callable[[Sequence[dict]], dict] = mean_percent
  higher_is_better: bool = True

  def score(self, prediction: str, reference: Any, **kwargs) -> dict:
    """Per-example result as a dict with "score"."""
    out = self.fn(prediction, reference, **kwargs)
    if isinstance(out, dict):
      return out
    return {"score": float(out)}

  def __call__(self, prediction: str, reference: Any, **kwargs) -> dict:
    return self.score(prediction, reference, **kwargs)


METRICS: Registry[Metric] = Registry("metric")


def register(name: str, fn: Callable, aggregate: Callable = mean_percent, doc: str = "") -> Metric:
  """Registers `fn` under `name` as a `Metric` and returns it."""
  metric = Metric(fn, aggregate)
  first_line = (fn.__doc__ or "").strip().splitlines()[:1]
  METRICS.register(name, metric, doc=doc or (first_line[0] if first_line else ""))
  return metric


def best_over_references(fn: Callable[[str, str], float]) -> Callable[..., float]:
  """max over a list of references (`metric_max_over_ground_truths` in SQuAD-derived code); a str is one reference."""

  def wrapped(prediction: str, references, **kwargs) -> float:
    refs = [references] if isinstance(references, str) else list(references)
    return max((fn(prediction, r, **kwargs) for r in refs), default=0.0)

  wrapped.__doc__ = fn.__doc__
  wrapped.__name__ = getattr(fn, "__name__", "metric")
  return wrapped
