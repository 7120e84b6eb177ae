"""LoCo / M2-BERT retrieval metric: NDCG@k as BEIR's `EvaluateRetrieval.evaluate` computes it through pytrec_eval
(trec_eval's `ndcg_cut`), reproduced in pure Python.

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


def beir_ndcg(qrels: Mapping[str, Mapping[str, int]], results: Mapping[str, Mapping[str, float]],
              k_values: Sequence[int] = (1, 3, 5, 10), ignore_identical_ids: bool = True) -> dict:
  """{"NDCG@k": mean over evaluated queries, rounded to 5 decimals} as BEIR reports it."""
  evaluated = {}
  for qid, docs in results.items():
    if qid not in qrels:
      continue
    if ignore_identical_ids:
      docs = {d: s for d, s in docs.items() if d != qid}
    evaluated[qid] = docs
  out = {}
  for k in k_values:
    vals = [ndcg_at_k(qrels[q], docs, k) for q, docs in evaluated.items()]
    out[f"NDCG@{k}"] = round(sum(vals) / len(vals), 5) if vals else 0.0
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
