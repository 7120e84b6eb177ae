"""LooGLE official automatic metrics (bigai-nlco/LooGLE @6734382 `Evaluation/automatic_metrics.py`,
`automatic_eval.py`).

- ROUGE is *recall* (`metric="r"`) of the pltrdy `rouge` package, per example, for rouge-1/2/L; the corpus numbers
  are `np.mean`s (`get_semantic_matching`). An empty hypothesis is replaced by "None" before scoring (`automatic_eval.evaluation`).
- Cloze: the prediction is parsed as a Python dict literal ({'<mask-0>': 'Bob', ...}); exact match counts masks
  whose predicted entity equals the gold (no type conversion: 5 != "5", as officially), partial match counts masks
  sharing at least one whitespace token; both are pooled over all masks of the corpus (sum of matches / sum of
  masks, rounded to 4 decimals). Deliberate differences: the official code runs Python `eval` on the model output;
  lcjax never executes model output and evaluates only literal expressions (`safe_eval`: literals, containers,
  signs and `+` concatenation of strings / lists / tuples, e.g. {'<mask-0>': 'New ' + 'York'}); anything else
  (names, calls, comprehensions) counts as unparseable, i.e. 0 (where `eval` of such text could run code or raise).
  Partial match converts a non-string predicted value with str() where the official `.split()` raises.
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


_ADD_TYPES = ((str, str), (list, list), (tuple, tuple))


def _literal(node: ast.AST):
  """Value of an expression made only of literals, containers, unary +/- on numbers and `+` between two strings,
  lists, tuples or numbers (what `eval` would compute for it); ValueError for anything else (names, calls, ...)."""
  if isinstance(node, ast.Constant):
    return node.value
  if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
    items = [_literal(e) for e in node.elts]
    return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
  if isinstance(node, ast.Dict):
    if any(k is None for k in node.keys):
      raise ValueError("dict unpacking")
    return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
  if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
    value = _literal(node.operand)
    if isinstance(value, (int, float, complex)) and not isinstance(value, bool):
      return +value if isinstance(node.op, ast.UAdd) else -value
  if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
    left, right = _literal(node.left), _literal(node.right)
    numbers = all(isinstance(x, (int, float, complex)) and not isinstance(x, bool) for x in (left, right))
    if numbers or any(isinstance(left, a) and isinstance(right, b) for a, b in _ADD_TYPES):
      return left + right
  raise ValueError(f"not a literal expression: {ast.dump(node)[:80]}")


def safe_eval(text: str):
  """What `eval(text)` returns when `text` is a literal expression (see `_literal`); None otherwise. Nothing is
  executed: the text is parsed and only literal nodes are evaluated."""
  try:
    return _literal(ast.parse(text.lstrip(" \t"), mode="eval").body)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    return None


def _parse_dict(hypothesis):
  if isinstance(hypothesis, dict):
    return hypothesis
  if not isinstance(hypothesis, str):
    return None
  value = safe_eval(hypothesis)
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
  """`get_semantic_matching`: np.mean of each ROUGE recall over the examples (pairwise summation)."""
  import numpy as np

  out = {k: float(np.mean([r[k] for r in rows])) for k in ("rouge-1", "rouge-2", "rouge-l")}
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
