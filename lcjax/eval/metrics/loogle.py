"""LooGLE official automatic metrics (bigai-nlco/LooGLE `Evaluation/automatic_metrics.py`, `automatic_eval.py`).

- ROUGE is *recall* (`metric="r"`) of the pltrdy `rouge` package, per example, for rouge-1/2/L; the corpus numbers
  are plain means. An empty hypothesis is replaced by "None" before scoring (`automatic_eval.evaluation`).
- Cloze: the prediction is parsed as a Python dict literal ({'<mask-0>': 'Bob', ...}); exact match counts masks
  whose predicted entity equals the gold, partial match counts masks sharing at least one whitespace token; both
  are pooled over all masks of the corpus (sum of matches / sum of masks, rounded to 4 decimals). The official
  code parses with `eval`; we use `ast.literal_eval`, which accepts the same dict literals and executes nothing.
- BLEU-1/4 is nltk's `sentence_bleu` on whitespace tokens (no NLTK data needed). METEOR and BERTScore need
  downloaded WordNet / model weights and are not provided.
"""

from __future__ import annotations

import ast
from typing import Sequence

from lcjax.eval.metrics.base import register
from lcjax.eval.metrics.text import pltrdy_rouge


def rouge_recall(prediction: str, reference: str) -> dict:
  """{"rouge-1","rouge-2","rouge-l"} recall of the pltrdy package ("" hypothesis -> "None")."""
  scores = pltrdy_rouge(prediction if prediction != "" else "None", reference)
  return {k: scores[k]["r"] for k in ("rouge-1", "rouge-2", "rouge-l")}


def _parse_dict(hypothesis):
  if isinstance(hypothesis, dict):
    return hypothesis
  try:
    value = ast.literal_eval(hypothesis)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    return None
  return value if isinstance(value, dict) else None


def cloze_exact(prediction, reference: dict) -> tuple[int, int]:
  """(masks whose predicted entity equals the gold, number of masks)."""
  hyp = _parse_dict(prediction)
  if hyp is None:
    return 0, len(reference)
  return sum(1 for k in reference if k in hyp and hyp[k] == reference[k]), len(reference)


def cloze_partial(prediction, reference: dict) -> tuple[int, int]:
  """(masks whose predicted entity shares a whitespace token with the gold, number of masks)."""
  hyp = _parse_dict(prediction)
  if hyp is None:
    return 0, len(reference)
  hits = 0
  for k in reference:
    if k in hyp:
      hits += int(len(set(str(reference[k]).split()) & set(str(hyp[k]).split())) > 0)
  return hits, len(reference)


def bleu(prediction: str, reference: str) -> tuple[float, float]:
  """(BLEU-1, BLEU-4) by nltk `sentence_bleu` on whitespace tokens, newlines turned into spaces."""
  from nltk.translate.bleu_score import sentence_bleu

  ref = reference.replace("\n", " ").split()
  hyp = prediction.replace("\n", " ").split()
  return sentence_bleu([ref], hyp, weights=(1, 0, 0, 0)), sentence_bleu([ref], hyp, weights=(0, 0, 0, 1))


def _rouge(prediction: str, reference, **kwargs) -> dict:
  """LooGLE ROUGE-L recall (with R-1/R-2 recall alongside)."""
  ref = reference if isinstance(reference, str) else reference[0]
  out = rouge_recall(prediction, ref)
  return {"score": out["rouge-l"], **out}


def _rouge_mean(rows: Sequence[dict]) -> dict:
  out = {k: sum(r[k] for r in rows) / len(rows) for k in ("rouge-1", "rouge-2", "rouge-l")}
  return {"score": out["rouge-l"], **out, "n": len(rows)}


def _cloze(prediction: str, reference, **kwargs) -> dict:
  """LooGLE cloze exact match (pooled over masks), partial match alongside."""
  exact, count = cloze_exact(prediction, reference)
  partial, _ = cloze_partial(prediction, reference)
  return {"score": exact / count if count else 0.0, "exact": exact, "partial": partial, "masks": count}


def _cloze_pooled(rows: Sequence[dict]) -> dict:
  masks = sum(r["masks"] for r in rows)
  return {"score": round(sum(r["exact"] for r in rows) / masks, 4),
          "partial": round(sum(r["partial"] for r in rows) / masks, 4), "n": len(rows)}


register("loogle.rouge", _rouge, aggregate=_rouge_mean)
register("loogle.cloze", _cloze, aggregate=_cloze_pooled)
