"""Splitting a context into the texts TracLLM attributes to (its `split_context`).

  segment:   100 whitespace words per text, each followed by " " (words split on " ", as the official code)
  paragraph: split on blank lines ("\n\n"), each text re-prefixed with "\n\n"
  sentence:  the paragraphs' sentences (rule-based splitter: abbreviations, initials, decimals kept whole)
A context already given as a list of several texts is kept as is.
"""

from __future__ import annotations

import re
from typing import Sequence

from lcjax.errors import ConfigError

LEVELS = ("segment", "paragraph", "sentence")
SEGMENT_WORDS = 100

_PREFIXES = re.compile(r"(Mr|St|Mrs|Ms|Dr|Prof|Capt|Lt|Jr|Sr|Inc|Ltd|Co|vs|etc|e\.g|i\.e)[.]")
_DECIMAL = re.compile(r"(\d)[.](\d)")
_INITIAL = re.compile(r"(\s[A-Za-z])[.](?=\s)")
_ACRONYM = re.compile(r"\b([A-Z])[.](?=[A-Z][.])")


def segments(text: str, words: int = SEGMENT_WORDS) -> list[str]:
  """Consecutive `words`-word pieces of `text` (split on " "), each + " "."""
  parts = text.split(" ")
  return [" ".join(parts[i:i + words]) + " " for i in range(0, len(parts), words)]


def paragraphs(text: str) -> list[str]:
  """Blank-line-separated paragraphs, each prefixed with "\n\n"."""
  return ["\n\n" + p for p in text.split("\n\n")]


def sentences(text: str) -> list[str]:
  """Sentences: split after . ? ! (not inside abbreviations, initials, acronyms or decimals), stripped."""
  t = " " + text.replace("\n", "<nl>") + " "
  t = _PREFIXES.sub(r"\1<prd>", t)
  t = _DECIMAL.sub(r"\1<prd>\2", t)
  t = _ACRONYM.sub(r"\1<prd>", t)
  t = _INITIAL.sub(r"\1<prd>", t)
  for end in ".?!":
    t = t.replace(end, end + "<stop>")
  out = [s.replace("<prd>", ".").replace("<nl>", "\n").strip() for s in t.split("<stop>")]
  return [s for s in out if s]


def split_context(context: str | Sequence[str], level: str = "segment") -> list[str]:
  """The texts of a context at `level` (a list of >1 texts is returned unchanged).

  Raises:
    ConfigError: unknown level.
  """
  if not isinstance(context, str):
    context = list(context)
    if len(context) > 1:
      return context
    context = context[0] if context else ""
  if level == "segment":
    return segments(context)
  if level == "paragraph":
    return paragraphs(context)
  if level == "sentence":
    return [s for p in paragraphs(context) for s in sentences(p)]
  raise ConfigError(f"unknown segmentation level {level!r}; accepted: {', '.join(LEVELS)}")
