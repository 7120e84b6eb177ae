"""Token layouts for context parallelism: which tokens of a sequence each of P ranks holds.

With a causal mask, contiguous shards are unbalanced: rank P-1's queries see every key, rank 0's only its own.
  zigzag  (Liu et al. / Megatron CP; also "load-balanced" ring attention): cut the sequence into 2P chunks;
          rank i holds chunks i and 2P-1-i, so every rank has one early and one late chunk (equal causal work).
  striped (Brandon et al. 2023, Striped Attention): token t goes to rank t mod P.
A layout is a permutation `perm` of [0, T): position j of the laid-out sequence holds token perm[j]; rank r holds
laid-out positions [r*T/P, (r+1)*T/P). Attention stays exact in any layout because masks read the tokens' true
positions (carried in `MaskSpec.q_positions` / `kv_positions`), and everything else in the model is per-token.
"""

from __future__ import annotations

import numpy as np

from lcjax.errors import ShapeError

LAYOUTS = ("contiguous", "zigzag", "striped")


def layout_permutation(seq_len: int, num_shards: int, layout: str) -> np.ndarray:
  """The permutation of [0, seq_len) that puts tokens in `layout` order for `num_shards` ranks.

  Raises:
    ShapeError: unknown layout, or seq_len not a multiple of num_shards (2 * num_shards for zigzag).
  """
  if layout not in LAYOUTS:
    raise ShapeError(f"unknown token layout {layout!r}; accepted: {', '.join(LAYOUTS)}")
  multiple = 2 * num_shards if layout == "zigzag" else num_shards
  if seq_len % multiple:
    raise ShapeError(f"a sequence of {seq_len} tokens does not split evenly over {num_shards} ranks in the "
                     f"{layout} layout: pad it to a multiple of {multiple}")
  idx = np.arange(seq_len)
  if layout == "contiguous":
    return idx
  if layout == "striped":
    return idx.reshape(seq_len // num_shards, num_shards).T.reshape(-1)
  chunks = idx.reshape(2 * num_shards, -1)
  return np.concatenate([np.concatenate([chunks[r], chunks[2 * num_shards - 1 - r]]) for r in range(num_shards)])


def inverse_permutation(perm: np.ndarray) -> np.ndarray:
  """inv with inv[perm[j]] = j (undoes a layout)."""
  inv = np.empty_like(perm)
  inv[perm] = np.arange(len(perm))
  return inv


def to_layout(batch: dict, num_shards: int, layout: str) -> dict:
  """Reorders every [B, T] array of a batch into `layout`; adds `positions` (true positions) if absent.

  Loss and gradients are unchanged (the loss is a sum over tokens); the model reads positions for RoPE and masks.
  """
  first = next(iter(batch.values()))
  b, t = np.shape(first)[:2]
  perm = layout_permutation(t, num_shards, layout)
  out = dict(batch)
  out.setdefault("positions", np.broadcast_to(np.arange(t, dtype=np.int32), (b, t)))
  return {k: np.asarray(v)[:, perm] for k, v in out.items()}
