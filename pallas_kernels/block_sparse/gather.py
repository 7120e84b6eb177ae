"""The gather-block attention mechanism shared by block-sparse, split-K decode and paged decode kernels.

A few query rows per (batch, kv head) attend to a list of key blocks read through an index table:
  q [B, K, R, H] (R = T * G rows: the GQA group packed with the query tokens), row positions [B, R];
  key/value blocks k, v [Bs, K, NB, C, H] (Bs = B for a per-sequence cache, 1 for a shared page pool);
  indices [B, K, M] (physical block of the i-th selected block), starts [B, K, M] (its first logical position),
  counts [B, K] (how many of the M are valid), kv_len [B] (keys at positions >= kv_len are hidden).
The M blocks are cut into `num_splits` parts computed in parallel (split-K); each part returns its normalised
output and log-sum-exp, merged afterwards (`tile_math.merge_partials`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jax import lax

from pallas_kernels.tile_math import PAD_KV_SEGMENT, softmax_update, tile_scores, tile_visible


@dataclasses.dataclass(frozen=True)
class GatherConfig:
  """Static parameters of a gather-block call.

  Attributes:
    causal: keys at positions <= the row's position.  window, sink: sliding window with sinks (or None, 0).
    scale, softcap: softmax scale and logit soft-cap.  num_splits: parts of the block list (split-K).
    interpret: run in the target's Pallas interpreter.
  """

  causal: bool
  window: int | None
  sink: int
  scale: float
  softcap: float | None
  num_splits: int
  interpret: bool = False

  @property
  def mask(self) -> dict:
    """Keyword arguments of `tile_visible`."""
    return dict(causal=self.causal, window=self.window, sink=self.sink)


def block_step(q, q_pos, k, v, start, kv_len, cfg: GatherConfig, carry):
  """Online-softmax update of rows q against one gathered key block.

  Args:
    q: [R, H].  q_pos: [R, 1] int32.  k, v: [C, H].  start: scalar first position of the block.
    kv_len: scalar number of valid positions.  carry: (m, l, acc) of `tile_math.softmax_update`.
  Returns:
    The updated carry.
  """
  c = k.shape[0]
  kv_pos = start + lax.broadcasted_iota(jnp.int32, (1, c), 1)
  kv_seg = jnp.where(kv_pos < kv_len, 0, PAD_KV_SEGMENT)
  ok = tile_visible(q_pos, jnp.zeros_like(q_pos), kv_pos, kv_seg, causal=cfg.causal, window=cfg.window,
                    sink=cfg.sink)
  s, _ = tile_scores(q, k, scale=cfg.scale, softcap=cfg.softcap)
  return softmax_update(s, ok, v, *carry)


def split_bounds(split, per_split: int, count):
  """[lo, hi) of the block list handled by part `split` (hi <= count)."""
  lo = split * per_split
  return lo, jnp.minimum(lo + per_split, count)
