"""LoCo / M2-BERT retrieval metric: NDCG@k as BEIR's `EvaluateRetrieval.evaluate` (beir-cellar/beir
`beir/retrieval/evaluation.py`) computes it through pytrec_eval (trec_eval's `ndcg_cut`): `beir_ndcg` calls
pytrec_eval when it is installed, and otherwise a pure-Python reimplementation checked against it.

trec_eval details that change numbers: documents are ranked by score descending with ties broken by document id
*descending* (string order); the gain is the relevance value itself (not 2^rel - 1); the ideal DCG uses the
judged relevances sorted descending; queries without a positive judgement score 0; BEIR drops a document whose id
equals the query id (`ignore_identical_ids=True`) and averages over the queries present in both run and qrels,
rounding to 5 decimals.
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

from lcjax.errors import ConfigError, ImplUnavailableError
from lcjax.eval.metrics.base import register


def trec_ranking(scores: Mapping[str, float]) -> list[str]:
  """Document ids in trec_eval order: score descending, then id descending."""
  return [d for d, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


def ndcg_at_k(qrel: Mapping[str, int], scores: Mapping[str, float], k: int) -> float:
  """trec_eval `ndcg_cut.k` of one query."""
  ranked = trec_ranking(scores)[:k]
  dcg = sum(qrel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked) if qrel.get(d, 0) > 0)
  ideal = sorted((r for r in qrel.values() if r > 0), reverse=True)[:k]
  idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
  return dcg / idcg if idcg > 0 else 0.0


def _pytrec_ndcg(qrels, results, k_values) -> dict[str, dict[str, float]] | None:
  """{qid: {"ndcg_cut_k": value}} from pytrec_eval's RelevanceEvaluator (None when pytrec_eval is not installed)."""
  try:
    import pytrec_eval
  except ImportError:
    return None
  measure = "ndcg_cut." + ",".join(str(k) for k in k_values)
  return pytrec_eval.RelevanceEvaluator({q: dict(d) for q, d in qrels.items()}, {measure}).evaluate(
      {q: dict(d) for q, d in results.items()})


def beir_ndcg(qrels: Mapping[str, Mapping[str, int]], results: Mapping[str, Mapping[str, float]],
              k_values: Sequence[int] = (1, 3, 5, 10), ignore_identical_ids: bool = True,
              backend: str = "auto") -> dict:
  """{"NDCG@k": mean over evaluated queries, rounded to 5 decimals} as BEIR's `EvaluateRetrieval.evaluate` reports
  it: identical query/document ids dropped, `pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.<ks>"})`, the per-query
  values summed in pytrec_eval's query order and divided by the number of evaluated queries.

  Args:
    backend: "pytrec_eval", "python" (the pure-Python trec_eval reimplementation above), or "auto" (pytrec_eval
      when installed, else python).
  """
  if backend not in ("auto", "pytrec_eval", "python"):
    raise ConfigError(f"NDCG backend {backend!r}; accepted: auto, pytrec_eval, python")
  if ignore_identical_ids:
    results = {q: {d: s for d, s in docs.items() if d != q} for q, docs in results.items()}
  scores = _pytrec_ndcg(qrels, results, k_values) if backend != "python" else None
  if scores is None:
    if backend == "pytrec_eval":
      raise ImplUnavailableError("backend 'pytrec_eval' needs the pytrec-eval-terrier package")
    scores = {q: {f"ndcg_cut_{k}": ndcg_at_k(qrels[q], docs, k) for k in k_values}
              for q, docs in results.items() if q in qrels}
  out = {}
  for k in k_values:
    total = 0.0
    for q in scores:
      total += scores[q][f"ndcg_cut_{k}"]
    out[f"NDCG@{k}"] = round(total / len(scores), 5) if scores else 0.0
  return out


def _ndcg10(prediction, reference, **kwargs) -> float:
  """NDCG@10 of one query: prediction maps doc id -> score, reference maps doc id -> relevance."""
  return ndcg_at_k(reference, prediction, kwargs.get("k", 10))


def listwise_scores(prediction: str, pids: Sequence[str]) -> dict[str, float]:
  """Scores from a ranked list of passage numbers ("[3] > [1] > [2]"): the i-th mentioned passage (1-based numbers
  into `pids`, repeats and out-of-range numbers ignored) gets len(pids) - i; unmentioned passages get 0."""
  order: list[int] = []
  for m in re.findall(r"\d+", prediction):
    k = int(m) - 1
    if 0 <= k < len(pids) and k not in order:
      order.append(k)
  scores = {pid: 0.0 for pid in pids}
  for rank, k in enumerate(order):
    scores[pids[k]] = float(len(pids) - rank)
  return scores


def _listwise(prediction: str, reference, pids: Sequence[str] = (), **kwargs) -> float:
  """NDCG@10 of an LLM's listwise ranking of the candidate passages."""
  return ndcg_at_k(reference, listwise_scores(prediction, list(pids)), kwargs.get("k", 10))


register("loco.listwise_ndcg@10", _listwise, aggregate=lambda rows: {
    "score": round(sum(r["score"] for r in rows) / len(rows), 5), "n": len(rows)})
register("loco.ndcg@10", _ndcg10, aggregate=lambda rows: {"score": round(sum(r["score"] for r in rows) / len(rows), 5),
                                                          "n": len(rows)})
