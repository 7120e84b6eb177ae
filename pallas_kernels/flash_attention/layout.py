"""Shared plumbing of the flash-attention kernels: static config, padded heads-major layout, block liveness.

Every target pads T and S to its block multiples, moves heads before tokens (q [B, N, Tp, H], k/v [B, K, Sp, H])
and carries per-token positions and segment ids [B, Tp] / [B, Sp]. Padded keys get segment PAD_KV and padded
queries PAD_Q, so they are invisible without a separate length mask.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from pallas_kernels.tile_math import F32, PAD_KV_SEGMENT, PAD_Q_SEGMENT, round_up

_BIG = 2 ** 30


@dataclasses.dataclass(frozen=True)
class FlashConfig:
  """Static parameters of one flash-attention call (hashable: it is a custom_vjp nondiff argument).

  Attributes:
    causal, window, sink: the mask pattern (see `lcjax.ops.mask`).
    scale: softmax scale.  softcap: logit soft-cap or None.
    block_q, block_k: tile sizes (already valid for the target).
    interpret: run the kernel in the Pallas interpreter of its target (CPU).
  """

  causal: bool
  window: int | None
  sink: int
  scale: float
  softcap: float | None
  block_q: int
  block_k: int
  interpret: bool = False

  @property
  def mask(self) -> dict:
    """Keyword arguments of `tile_visible`."""
    return dict(causal=self.causal, window=self.window, sink=self.sink)


def _pad(x, size, axis, value=0):
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, size - x.shape[axis])
  return jnp.pad(x, widths, constant_values=value)


def to_blocks_layout(q, k, v, q_pos, q_seg, kv_pos, kv_seg, block_q: int, block_k: int):
  """Pads and transposes to the kernels' layout.

  Args:
    q: [B, T, N, H].  k, v: [B, S, K, H].  q_pos, q_seg: [B, T] int32.  kv_pos, kv_seg: [B, S] int32.
  Returns:
    (q [B, N, Tp, H], k, v [B, K, Sp, H], q_pos, q_seg [B, Tp], kv_pos, kv_seg [B, Sp]).
  """
  tp, sp = round_up(q.shape[1], block_q), round_up(k.shape[1], block_k)
  return (pad_heads_major(q, tp), pad_heads_major(k, sp), pad_heads_major(v, sp), _pad(q_pos, tp, 1),
          _pad(q_seg, tp, 1, PAD_Q_SEGMENT), _pad(kv_pos, sp, 1), _pad(kv_seg, sp, 1, PAD_KV_SEGMENT))


def pad_heads_major(x, length: int):
  """[B, L, X, H] -> [B, X, length, H], zero-padded along L."""
  return jnp.swapaxes(_pad(x, length, 1), 1, 2)


def from_blocks_layout(x, length: int):
  """[B, X, Lp, H] -> [B, L, X, H] (drops padding)."""
  return jnp.swapaxes(x, 1, 2)[:, :length]


def _block_ranges(pos, seg, pad_segment, block):
  """Per block min/max of positions and segments over its real tokens: four [B, nblocks] arrays."""
  b, length = pos.shape
  real = (seg != pad_segment).reshape(b, -1, block)
  pos, seg = pos.reshape(b, -1, block), seg.reshape(b, -1, block)
  lo = lambda x: jnp.min(jnp.where(real, x, _BIG), axis=2)  # noqa: E731
  hi = lambda x: jnp.max(jnp.where(real, x, -_BIG), axis=2)  # noqa: E731
  return lo(pos), hi(pos), lo(seg), hi(seg)


def block_liveness(q_pos, q_seg, kv_pos, kv_seg, cfg: FlashConfig):
  """Splash-style block mask info: which (query block, key block) pairs can hold a visible key.

  Conservative (from per-block position/segment ranges): a dead pair has no visible key; a live one may.
  Args:
    q_pos, q_seg: [B, Tp].  kv_pos, kv_seg: [B, Sp] (padded layout).
  Returns:
    [B, nq, nk] int32, 1 where the tile must be computed.
  """
  qp_lo, qp_hi, qs_lo, qs_hi = (x[:, :, None] for x in _block_ranges(q_pos, q_seg, PAD_Q_SEGMENT, cfg.block_q))
  kp_lo, kp_hi, ks_lo, ks_hi = (x[:, None, :] for x in _block_ranges(kv_pos, kv_seg, PAD_KV_SEGMENT,
                                                                      cfg.block_k))
  live = (qs_lo <= ks_hi) & (ks_lo <= qs_hi) & (qp_lo < _BIG) & (kp_lo < _BIG)
  if cfg.causal:
    live &= kp_lo <= qp_hi
  if cfg.window is not None:
    near = qp_lo - kp_hi < cfg.window
    if cfg.sink:
      near |= kp_lo < cfg.sink
    live &= near
  return live.astype(jnp.int32)


def fetch_order(live):
  """Block index each step should read: itself when live, else the last live block before it (no new DMA).

  Args:
    live: [..., n] int32 liveness along the loop axis.
  Returns:
    [..., n] int32 block indices.
  """
  steps = jnp.arange(live.shape[-1], dtype=jnp.int32)
  return jax.lax.cummax(jnp.where(live > 0, steps, 0), axis=live.ndim - 1)


def row_delta(out, d_out, keepdims: bool = False):
  """D = rowsum(dO * O) of the backward pass: [B, N, Tp, H] x2 -> [B, N, Tp] (or [B, N, Tp, 1]) fp32."""
  return jnp.sum(out.astype(F32) * d_out.astype(F32), axis=-1, keepdims=keepdims)


def fold_groups(x, kv_heads: int, dtype):
  """Per-query-head key gradients [B, N, Sp, H] summed over each GQA group -> [B, K, Sp, H] in `dtype`."""
  b, n, sp, h = x.shape
  return x.reshape(b, kv_heads, n // kv_heads, sp, h).sum(axis=2).astype(dtype)
