"""TracLLM's informed search (recursive halving with top-K pruning) and the score-function ensemble.

  result = attribute(value, texts, K=5, score_funcs=("stc", "loo", "denoised_shapley"), w=2.0)
  result.top(5)    # [(text id, score), ...] best first

Search: nodes = [all texts]; while some node has more than one text, split every multi-text node into halves
(mid = len // 2); if there are at most K nodes keep them all unscored, else score them (a node's string is its
texts joined by " ") and keep the top K in their original order. Ends with <= K singletons and their scores. When
the texts never outnumber K the loop never scores (the official code then crashes on `None` scores): here the
final singletons are scored once. Ensemble: the search runs separately per score function; a text's final score is
the max over functions of weight * score, with weight w for LOO and 1 for the others.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np

from lcjax.attribution.scores import SCORE_FUNCS, ScoreOptions, Value, score
from lcjax.errors import ConfigError

DEFAULT_FUNCS = ("stc", "loo", "denoised_shapley")


@dataclasses.dataclass
class SearchResult:
  """Surviving text ids (original order) with their scores, and the node count of every scored level."""

  ids: list[int]
  scores: list[float]
  scored_levels: list[int]
  levels: int


def _top_k(nodes: list[list[int]], values: np.ndarray, k: int) -> tuple[list[list[int]], list[float]]:
  order = sorted(range(len(nodes)), key=lambda i: (-values[i], i))[:k]
  keep = sorted(order)
  return [nodes[i] for i in keep], [float(values[i]) for i in keep]


def tracllm_search(value: Value, texts: Sequence[str], k: int, score_func: str,
                   opts: ScoreOptions = ScoreOptions()) -> SearchResult:
  """The recursive-halving search with one score function (see the module docstring)."""
  if k < 1:
    raise ConfigError(f"K must be >= 1, got {k}")
  SCORE_FUNCS.get(score_func)
  nodes: list[list[int]] = [list(range(len(texts)))]
  scores: list[float] | None = None
  scored, levels = [], 0
  render = lambda group: [" ".join(texts[i] for i in node) for node in group]  # noqa: E731
  while any(len(node) > 1 for node in nodes):
    levels += 1
    split = []
    for node in nodes:
      split += [node[:len(node) // 2], node[len(node) // 2:]] if len(node) > 1 else [node]
    if len(split) <= k:
      nodes, scores = split, None
    else:
      scored.append(len(split))
      nodes, scores = _top_k(split, score(score_func, value, render(split), opts), k)
  if scores is None:  # n <= K: never scored in the loop
    scored.append(len(nodes))
    scores = [float(s) for s in score(score_func, value, render(nodes), opts)]
  return SearchResult([node[0] for node in nodes], scores, scored, levels)


@dataclasses.dataclass
class Attribution:
  """Ensemble scores per text id, each function's (id, score) list, cost (value calls, forwards, seconds)."""

  texts: list[str]
  scores: dict[int, float]
  per_func: dict[str, list[tuple[int, float]]]
  calls: int
  forwards: int
  seconds: float

  def top(self, k: int) -> list[tuple[int, float]]:
    """The k highest-scoring texts, best first (ties: lower id first)."""
    return sorted(self.scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def attribute(value: Value, texts: Sequence[str], k: int = 5, score_funcs: Sequence[str] = DEFAULT_FUNCS,
              w: float = 2.0, opts: ScoreOptions = ScoreOptions(), search: bool = True) -> Attribution:
  """TracLLM: the search per score function, then the weighted-max ensemble.

  Args:
    value: a value function (`ValueFunction`).  texts: the segmented context.  k: K.
    score_funcs: names in `SCORE_FUNCS`.  w: LOO's ensemble weight.
    search: False scores every text with each function directly ("vanilla perturbation", the baselines).
  Raises:
    UnknownNameError: an unknown score function.  ConfigError: no texts.
  """
  if not texts:
    raise ConfigError("nothing to attribute: the context has no texts")
  for f in score_funcs:
    SCORE_FUNCS.get(f)
  calls0, forwards0 = getattr(value, "calls", 0), getattr(value, "forwards", 0)
  start = time.perf_counter()
  combined: dict[int, float] = {}
  per_func = {}
  for f in score_funcs:
    if search:
      res = tracllm_search(value, texts, k, f, opts)
      pairs = list(zip(res.ids, res.scores))
    else:
      pairs = list(enumerate(score(f, value, list(texts), opts).tolist()))
    per_func[f] = pairs
    weight = w if f == "loo" else 1.0
    for i, s in pairs:
      combined[i] = max(combined.get(i, -np.inf), weight * s)
  return Attribution(list(texts), combined, per_func, getattr(value, "calls", 0) - calls0,
                     getattr(value, "forwards", 0) - forwards0, time.perf_counter() - start)


def precision_recall(predicted: Sequence[int], truth: Sequence[int]) -> tuple[float, float]:
  """Set precision |P & T| / |P| and recall |P & T| / |T| (TracLLM's evaluate.py)."""
  p, t = set(predicted), set(truth)
  hit = len(p & t)
  return (hit / len(p) if p else 0.0), (hit / len(t) if t else 0.0)
