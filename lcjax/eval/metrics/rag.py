"""RAG QA metrics (DRAG/IterDRAG, Yue et al. 2025): exact match, token F1 and accuracy (a gold answer contained in
the prediction), each the max over the gold answers after SQuAD normalisation."""

from __future__ import annotations

from typing import Sequence

from lcjax.eval.metrics.base import mean_percent, register
from lcjax.eval.metrics.text import normalize_answer, qa_f1


def rag_qa(prediction: str, references: Sequence[str] | str) -> dict:
  """{"score": acc, "em", "f1", "acc"} of one prediction (0..1 each)."""
  refs = [references] if isinstance(references, str) else list(references)
  pred = normalize_answer(prediction)
  em = max(float(pred == normalize_answer(r)) for r in refs)
  acc = max(float(bool(normalize_answer(r)) and f" {normalize_answer(r)} " in f" {pred} ") for r in refs)
  f1 = max(qa_f1(prediction, r) for r in refs)
  return {"score": acc, "em": em, "f1": f1, "acc": acc}


def aggregate(rows: Sequence[dict]) -> dict:
  """Accuracy as the score, with EM and F1 beside it (percent, 2 decimals)."""
  out = mean_percent(rows, "acc")
  out["em"] = mean_percent(rows, "em")["score"]
  out["f1"] = mean_percent(rows, "f1")["score"]
  return out


register("rag.qa", rag_qa, aggregate, doc="RAG QA: accuracy (gold contained), EM and F1 over gold answers")
