"""SCBench Code.RepoQA scorer (microsoft/MInference @fb56c91 `scbench/repo_qa_utils.py`, from evalplus/repoqa).

Per turn: the model output is sanitised (`sanitize_output`: without a ``` code block the whole stripped output;
otherwise the first function definition tree-sitter finds in the first block that has one, else the first block),
then compared with every needle function of the same repository by BLEU (nltk `sentence_bleu` of whitespace
tokens, Chen & Cherry smoothing method 4); the turn passes at threshold t when the most similar needle (strictly
greater similarity wins, ties keep the earlier needle, all-zero similarity matches nothing) is the asked function
and its similarity is >= t. pass@1 with one sample per problem is the share of passing turns; SCBench reports the
0.8 threshold ("all" languages). `ignore_comments` is False in SCBench's call, so comments are kept.

Deliberate difference: the official code parses with `tree_sitter_languages` (tree-sitter < 0.22); lcjax uses the
maintained `tree-sitter` bindings and per-language grammar packages (tree-sitter-python, -java, -typescript,
-rust, -cpp, -go), an optional dependency needed only for outputs with a code block (ImplUnavailableError
otherwise); newer grammars may delimit a function differently in rare malformed code.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Sequence

from lcjax.errors import ImplUnavailableError, UnknownNameError

FUNCTION_QUERY = {
    "python": "(function_definition name: (_)) @fdef",
    "java": "(method_declaration name: (_)) @fdef",
    "typescript": "(function_declaration name: (_)) @fdef",
    "rust": "(function_item name: (_)) @fdef",
    "cpp": "(function_definition declarator: (function_declarator declarator: (identifier))) @fdef",
    "go": "(function_declaration name: (_)) @fdef",
}
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
REPORTED_THRESHOLD = 0.8
_CODE_BLOCK = re.compile(r"^```(?:\w+)?\s*\n(.*?)(?=^```)```", re.DOTALL | re.MULTILINE)


@functools.lru_cache(maxsize=None)
def _parser(lang: str):
  """(tree_sitter Parser, Query) of `lang`; ImplUnavailableError when the bindings or the grammar are missing."""
  if lang not in FUNCTION_QUERY:
    raise UnknownNameError(f"RepoQA language {lang!r}; known: {sorted(FUNCTION_QUERY)}")
  package = f"tree_sitter_{lang}"
  try:
    ts = importlib.import_module("tree_sitter")
    grammar = importlib.import_module(package)
  except ImportError as e:
    raise ImplUnavailableError(f"SCBench RepoQA needs `tree-sitter` and `{package.replace('_', '-')}` to find the "
                               f"function in a code block: pip install tree-sitter {package.replace('_', '-')}") from e
  language = ts.Language(getattr(grammar, "language_typescript" if lang == "typescript" else "language")())
  return ts.Parser(language), ts.Query(language, FUNCTION_QUERY[lang]), ts


def first_function(block: str, lang: str) -> str | None:
  """Source of the first (earliest-starting) function definition tree-sitter finds in `block`, or None."""
  parser, query, ts = _parser(lang)
  data = bytes(block, "utf8")
  nodes = ts.QueryCursor(query).captures(parser.parse(data).root_node).get("fdef", [])
  if not nodes:
    return None
  node = min(nodes, key=lambda n: (n.start_byte, -n.end_byte))
  return data[node.start_byte:node.end_byte].decode("utf8")


def sanitize_output(model_output: str, lang: str) -> str:
  """`sanitize_output`: the stripped output without code blocks, else the first function of the first block that
  has one, else the first block."""
  model_output = model_output.strip()
  blocks = _CODE_BLOCK.findall(model_output)
  if not blocks:
    return model_output
  for block in blocks:
    found = first_function(block, lang)
    if found is not None:
      return found
  return blocks[0]


def function_similarity(candidate: str, reference: str) -> float:
  """`compute_function_similarity`: BLEU-4 of whitespace tokens with SmoothingFunction().method4."""
  from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

  cand = re.split(r"\s+", candidate.strip())
  ref = re.split(r"\s+", reference.strip())
  return sentence_bleu([ref], cand, smoothing_function=SmoothingFunction().method4)


def needle_match(model_output: str, func_name: str, needles: Sequence[dict], lang: str) -> dict:
  """`needle_evaluator`: {"best_target", "best_similarity", "is_best_similar"} against the repo's needles
  ([{"name", "needle"}])."""
  output = sanitize_output(model_output, lang)
  best_target, best = None, 0.0
  for needle in needles:
    similarity = function_similarity(output, needle["needle"])
    if similarity > best:
      best, best_target = similarity, needle["name"]
  return {"best_target": best_target, "best_similarity": best, "is_best_similar": best_target == func_name}


def pass_at_1(rows: Sequence[dict], threshold: float = REPORTED_THRESHOLD) -> float:
  """Share of turns whose best match is the asked function with similarity >= threshold (pass@1, one sample)."""
  if not rows:
    return 0.0
  hits = [1 if r["is_best_similar"] and r["best_similarity"] >= threshold else 0 for r in rows]
  return sum(hits) / len(hits)
