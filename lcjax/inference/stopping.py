"""Stop strings: generation ends at the first occurrence of any of them (and at EOS).

Inside the jitted decode loop a row can only stop on token ids, so a stop string becomes the set of vocabulary tokens
whose text contains it (`stop_token_ids`); the loop ends the moment one is emitted. A stop string split over several
tokens is not seen by the loop; `cut_at_stop` finds it in the decoded text afterwards. Together they give the usual
rule: the answer is the text before the first stop string.

  ids = stop_token_ids(tok, ["\\n\\n"])
  res = gen.generate(state, [prompt], stop_ids=(*cfg.eos_token_ids, *ids))
  answer = answer_text(tok, res, 0, ["\\n\\n"], cfg.eos_token_ids)
"""

from __future__ import annotations

import functools
from typing import Sequence

from lcjax.errors import ConfigError

NEWLINE_RULE = ("\n\n",)  # chat answers end at the first blank line: what follows is a new paragraph, not the answer


@functools.lru_cache(maxsize=8)
def _vocab_texts(tokenizer) -> tuple[str, ...]:
  return tuple(tokenizer.backend.decode_batch([[i] for i in range(tokenizer.vocab_size)],
                                              skip_special_tokens=False))


def stop_token_ids(tokenizer, stop_strings: Sequence[str]) -> tuple[int, ...]:
  """Ids of the vocabulary tokens whose decoded text contains any stop string.

  Raises:
    ConfigError: an empty stop string (it would stop on every token).
  """
  if any(not s for s in stop_strings):
    raise ConfigError(f"stop strings must be non-empty, got {list(stop_strings)!r}")
  if not stop_strings:
    return ()
  return tuple(i for i, text in enumerate(_vocab_texts(tokenizer)) if any(s in text for s in stop_strings))


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> str:
  """`text` up to the earliest stop string (leading whitespace is skipped first, so a reply that opens with a
  newline is not empty), with trailing whitespace removed."""
  body = text.lstrip()
  cuts = [i for i in (body.find(s) for s in stop_strings) if i >= 0]
  return body[: min(cuts)].rstrip() if cuts else body.rstrip()


def answer_text(tokenizer, result, row: int, stop_strings: Sequence[str], eos_ids: Sequence[int]) -> str:
  """The answer of `row` of a GenerationResult: its tokens plus the token that stopped it (unless EOS, which has no
  text), decoded and cut at the first stop string."""
  ids = list(result.tokens[row])
  stop = result.stop_tokens[row] if result.stop_tokens else None
  if stop is not None and stop not in eos_ids:
    ids.append(stop)
  return cut_at_stop(tokenizer.decode(ids), stop_strings)
