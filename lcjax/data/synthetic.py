"""Synthetic long-context retrieval data: key-value retrieval in a haystack of filler tokens (passkey-style).

A sample of length T over a vocabulary of V ids (V >= 16) is

  [BOS] f f k_1 v_1 f f f k_2 v_2 f ... f  Q k_a v_a  Q k_b v_b ...
  `---------- context: pairs at random places -------'  `-- queries --'

Ids are split into four ranges: specials (PAD=0, BOS=1, Q=2, 3 unused), keys, values and filler (a quarter of the
rest each, filler taking the remainder). Keys in a sample are distinct; each query asks for one of the pairs (without
repetition), and the answer v follows the query's key. Only the answers are predicted (`loss_mask`), so retrieval
accuracy is the argmax accuracy on the masked targets. Samples are a pure function of (seed, length, vocab).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lcjax.errors import ConfigError

PAD, BOS, QUERY = 0, 1, 2
_SPECIALS = 4


@dataclasses.dataclass(frozen=True)
class KVVocab:
  """Id ranges [start, stop) of keys, values and filler within a vocabulary of `size` ids."""

  size: int

  def __post_init__(self):
    if self.size < 16:
      raise ConfigError(f"kv retrieval needs vocab_size >= 16, got {self.size}")

  @property
  def keys(self) -> tuple[int, int]:
    n = (self.size - _SPECIALS) // 4
    return _SPECIALS, _SPECIALS + n

  @property
  def values(self) -> tuple[int, int]:
    start = self.keys[1]
    return start, start + (self.size - _SPECIALS) // 4

  @property
  def filler(self) -> tuple[int, int]:
    return self.values[1], self.size


def _layout(length, vocab_size, num_pairs, num_queries, num_keys, extra_queries, num_values, fused):
  """(key range, value range, filler range, context length) of a sample, validated (see kv_retrieval)."""
  vocab = KVVocab(vocab_size)
  k0, k1 = vocab.keys
  k1 = k0 + num_keys if 0 < num_keys <= k1 - k0 else k1
  if num_pairs > k1 - k0 or num_queries > num_pairs or num_queries < 1:
    raise ConfigError(f"kv retrieval: num_pairs={num_pairs} must be <= {k1 - k0} keys and num_queries="
                      f"{num_queries} in [1, num_pairs]")
  tail = 3 * (num_queries + extra_queries)
  context = length - 1 - tail
  if context < 2 * num_pairs:
    raise ConfigError(f"kv retrieval: length={length} too short for {num_pairs} pairs and {num_queries} queries "
                      f"(needs >= {1 + tail + 2 * num_pairs})")
  v0, v1 = vocab.values
  v1 = v0 + num_values if 0 < num_values <= v1 - v0 else v1
  filler = (v1 + (k1 - k0) * (v1 - v0), vocab.size) if fused else vocab.filler
  if filler[1] - filler[0] < 1:
    raise ConfigError(f"kv retrieval: vocab_size={vocab_size} leaves no filler ids for {k1 - k0} keys x "
                      f"{v1 - v0} values fused pairs; lower num_keys / num_values")
  return (k0, k1), (v0, v1), filler, context


def kv_retrieval(seed: int, length: int, vocab_size: int, num_pairs: int = 4, num_queries: int | None = None,
                 num_keys: int = 0, extra_queries: int = 0, num_values: int = 0, fused: bool = False) -> dict:
  """One key-value retrieval sample.

  Args:
    seed: the sample's seed (the sample is a pure function of the arguments).
    length: T, total tokens.  vocab_size: V.  num_pairs: key-value pairs hidden in the context.
    num_queries: queries at the end (default num_pairs; each asks a different pair).
    num_keys: keys are drawn from the first num_keys ids of the key range (0 = the whole range); num_keys =
      num_pairs makes every sample use the same marker keys in a random order (a multi-passkey task).
    extra_queries: further queries after the distinct ones, keys drawn with repetition (denser training signal;
      their answers also appear among earlier queries, so evaluate with 0).
    num_values: values are drawn from the first num_values ids of the value range (0 = the whole range).
    fused: write each context pair as ONE token (id = pair_base + key index * num_values + value index, placed
      after the value range; filler follows), so retrieval is one attention hop (query key -> pair token)
      instead of the two-hop induction circuit a "k v" bigram needs; queries stay "Q k v".
  Returns:
    {"tokens": [T] int32, "loss_mask": [T] float32 (1 at answer tokens: predict tokens[i] from tokens[:i]),
     "answer_positions": [Q] int32 indices of the answers in tokens, "answers": [Q] int32}, Q = num_queries +
    extra_queries.
  Raises:
    ConfigError: too many pairs for the key range, or a length too short for pairs and queries.
  """
  num_queries = num_pairs if num_queries is None else num_queries
  (k0, k1), (v0, v1), filler, context = _layout(length, vocab_size, num_pairs, num_queries, num_keys, extra_queries,
                                                num_values, fused)
  rng = np.random.default_rng(seed)
  keys = rng.choice(np.arange(k0, k1), num_pairs, replace=False)
  values = rng.integers(v0, v1, num_pairs)
  body = rng.integers(*filler, context)
  width = 1 if fused else 2  # tokens per pair in the context
  # Pair starts: num_pairs distinct slots of `width` tokens, so pairs never overlap.
  slots = np.sort(rng.choice(context // width, num_pairs, replace=False)) * width
  order = rng.permutation(num_pairs)
  if fused:
    body[slots] = v1 + (keys[order] - k0) * (v1 - v0) + (values[order] - v0)
  else:
    body[slots], body[slots + 1] = keys[order], values[order]
  asked = np.concatenate([rng.choice(num_pairs, num_queries, replace=False),
                          rng.integers(0, num_pairs, extra_queries)]).astype(np.int64)
  queries = np.stack([np.full(len(asked), QUERY), keys[asked], values[asked]], axis=1).reshape(-1)
  tokens = np.concatenate([[BOS], body, queries]).astype(np.int32)
  answer_positions = (1 + context + 3 * np.arange(len(asked)) + 2).astype(np.int32)
  loss_mask = np.zeros(length, np.float32)
  loss_mask[answer_positions] = 1.0
  return {"tokens": tokens, "loss_mask": loss_mask, "answer_positions": answer_positions,
          "answers": values[asked].astype(np.int32)}


class SyntheticSource:
  """A grain random-access source of `kv_retrieval` samples: record i uses seed `seed * 1_000_003 + i`.

  Args:
    length, vocab_size, num_pairs, num_queries, num_keys, extra_queries, num_values, fused: as `kv_retrieval`.
    num_records: len().  seed: source seed.
  """

  def __init__(self, length: int, vocab_size: int, num_pairs: int = 4, num_queries: int | None = None,
               num_keys: int = 0, extra_queries: int = 0, num_values: int = 0, fused: bool = False,
               num_records: int = 1 << 20, seed: int = 0):
    if num_records < 1:
      raise ConfigError(f"SyntheticSource needs num_records >= 1, got {num_records}")
    self.kwargs = dict(length=length, vocab_size=vocab_size, num_pairs=num_pairs, num_queries=num_queries,
                       num_keys=num_keys, extra_queries=extra_queries, num_values=num_values, fused=fused)
    self.num_records, self.seed = num_records, seed
    kv_retrieval(0, **self.kwargs)  # validate once

  def __len__(self) -> int:
    return self.num_records

  def __getitem__(self, index: int) -> dict:
    return kv_retrieval(self.seed * 1_000_003 + int(index), **self.kwargs)
