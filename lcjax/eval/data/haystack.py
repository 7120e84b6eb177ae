"""Haystack text and length fitting for the synthetic generators.

Lengths are measured in the evaluated model's tokens: a generator builds its prompt from an integer size (words of
haystack, noise sentences, list entries, ...) and `fit_to_tokens` searches the size whose prompt is the longest not
exceeding the target, so every sample lands within a few tokens (well inside +-2%) of the requested length.
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Protocol, Sequence

from lcjax.errors import ConfigError

# Sentence boundary: ., ! or ? followed by whitespace (stands in for RULER's NLTK punkt, which needs data files).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class TokenCounter(Protocol):
  """Anything with `encode(text) -> list[int]` and `decode(ids) -> str` (lcjax.data.tokenizer.Tokenizer)."""

  def encode(self, text: str) -> list[int]: ...

  def decode(self, ids: Sequence[int]) -> str: ...


@functools.lru_cache(maxsize=1)
def essay_words() -> tuple[str, ...]:
  """The bundled Paul Graham essays as whitespace-separated words (RULER: `re.sub(r"\\s+", " ", essay).split(" ")`)."""
  from lcjax.assets import haystack_text

  return tuple(re.sub(r"\s+", " ", haystack_text()).strip().split(" "))


def split_sentences(text: str) -> list[str]:
  """Sentences of `text` (split after . ! ? + whitespace); whitespace-only pieces dropped."""
  return [s for s in _SENTENCE_END.split(text.strip()) if s]


def parse_length(value: str | int) -> int:
  """ "4k" -> 4096, "1.5k" -> 1536, "512" -> 512, "1m" -> 1048576 (k = 1024, m = 1024**2)."""
  if isinstance(value, int):
    return value
  text = str(value).strip().lower()
  scale = {"k": 1024, "m": 1024 ** 2}.get(text[-1:], 1)
  number = text[:-1] if scale > 1 else text
  try:
    out = int(float(number) * scale)
  except ValueError:
    raise ConfigError(f"bad length {value!r}; expected an integer or a number with k/m suffix like 4k") from None
  if out <= 0:
    raise ConfigError(f"length must be positive, got {value!r}")
  return out


def fit_to_tokens(build: Callable[[int], str], tokenizer: TokenCounter, target: int, lo: int = 1,
                  hi: int | None = None, guess: int | None = None) -> tuple[int, str, int]:
  """Largest size n in [lo, hi] with len(encode(build(n))) <= target (sizes grow the prompt monotonically).

  Returns:
    (n, text, tokens). Raises ConfigError if even `lo` is longer than the target.
  """
  count = lambda n: len(tokenizer.encode(build(n)))  # noqa: E731
  if count(lo) > target:
    raise ConfigError(f"the smallest prompt of this task ({count(lo)} tokens) exceeds the requested length "
                      f"{target}; ask for a longer length")
  good = lo
  step = max(1, (guess or lo) - lo)
  probe = lo + step
  while (hi is None or probe <= hi) and count(probe) <= target:  # exponential bracket
    good, step = probe, step * 2
    probe = good + step
  bad = probe if hi is None else min(probe, hi + 1)
  while bad - good > 1:
    mid = (good + bad) // 2
    if count(mid) <= target:
      good = mid
    else:
      bad = mid
  text = build(good)
  return good, text, len(tokenizer.encode(text))


def boundary_at(sentences: Sequence[str], depth: float) -> int:
  """The sentence boundary (0..len) whose character offset is closest to depth% of the joined text. (RULER uses
  int(len(sentences) * depth / 100), a sentence-count fraction; measuring characters keeps the needle at the
  requested depth of the text however uneven the sentences are.)"""
  offsets = [0]
  for s in sentences:
    offsets.append(offsets[-1] + len(s) + 1)
  target = depth / 100 * offsets[-1]
  return min(range(len(offsets)), key=lambda i: abs(offsets[i] - target))


def insert_at_depths(sentences: Sequence[str], needles: Sequence[str], depths: Sequence[float]) -> str:
  """Joins sentences with each needle inserted at the boundary nearest its depth (sorted insertion positions,
  needles in the given order), separated by spaces."""
  positions = sorted(boundary_at(sentences, d) for d in depths)
  parts, last = [], 0
  for pos, needle in zip(positions, needles):
    parts.append(" ".join(sentences[last:pos]))
    parts.append(needle)
    last = pos
  parts.append(" ".join(sentences[last:]))
  return " ".join(p for p in parts if p)


def essay_prefix(n_words: int) -> str:
  """The first n words of the essays, cycling through them if more are asked for."""
  words = essay_words()
  reps = -(-n_words // len(words))
  return " ".join((words * reps)[:n_words])
