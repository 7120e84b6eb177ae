"""Attention over a KV method's selection: the gather path every method shares.

A selection names, per batch row and head, which key blocks (C consecutive positions; C = 1 for token-level
selections) a decode query attends to:

  indices [B, Hs, M] int32 block ids (the first counts[b, h] are valid, the rest padding),
  counts  [B, Hs]    int32,
  Hs = K (one selection per kv head, shared by its G query heads) or N (one per query head, LongHeads).

A device-resident cache attends through `lcjax.ops.block_sparse.block_sparse_attention` (the Pallas kernels'
dispatch: reference gather on CPU, Triton / Mosaic GPU / TPU kernels elsewhere; `impl` picks one), with `kv_lengths`
(hide the partly written last block) and `return_lse` (Sink-KV rescales by a zero-value slot). A cache whose rows
live elsewhere (a host tier) passes its own row gather `take`: the selection's rows are gathered (`gather_blocks`)
and attended at their positions (`attend_rows`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lcjax.errors import ConfigError, ShapeError
from lcjax.ops.attention_reference import attention_reference
from lcjax.ops.block_sparse import block_sparse_attention
from lcjax.ops.mask import MaskSpec

_FAR = 2**30  # position of padding entries: after every query, so the causal mask hides them


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Selection:
  """Which key blocks each head attends to.

  Attributes:
    indices: [B, Hs, M] int32 block ids (first `counts` valid).  counts: [B, Hs] int32.
    block_size: C, positions per block (static).
  """

  indices: jax.Array
  counts: jax.Array
  block_size: int = dataclasses.field(metadata=dict(static=True))

  def positions(self) -> jax.Array:
    """[B, Hs, M*C] key positions covered (padding entries included)."""
    c = self.block_size
    pos = self.indices[..., None] * c + jnp.arange(c, dtype=jnp.int32)
    return pos.reshape(*self.indices.shape[:2], -1)

  def valid(self) -> jax.Array:
    """[B, Hs, M*C] bool, the entries within `counts`."""
    m = self.indices.shape[-1]
    ok = jnp.arange(m)[None, None, :] < self.counts[..., None]
    return jnp.repeat(ok, self.block_size, axis=-1)


def take_rows(x, positions):
  """x [B, K, S, H] at positions [B, K, P] (in range) -> [B, K, P, H]: the device-resident gather."""
  return jnp.take_along_axis(x, positions[..., None], axis=2)


def attend_rows(q, k_rows, v_rows, kv_pos, kv_lengths=None, *, scale: float | None = None,
                softcap: float | None = None):
  """Attention of q over gathered keys at their own positions, one masked pass per kv head.

  Args:
    q: [B, T, N, H].  k_rows, v_rows: [B, K, P, H] keys/values in any order.  kv_pos: [B, K, P] int32 their
    positions (_FAR or any position >= kv_lengths: hidden).  kv_lengths: optional [B].
  Returns:
    (out [B, T, N, H], lse [B, T, N]).
  """
  b, t, n, h = q.shape
  kh = k_rows.shape[1]
  scale = 1.0 / math.sqrt(h) if scale is None else scale
  # the query sits at position kv_lengths - 1 under a causal mask: later (unwritten, padding) entries are hidden
  last = (_FAR - 1) * jnp.ones((b,), jnp.int32) if kv_lengths is None else kv_lengths.astype(jnp.int32) - 1
  q_pos = jnp.broadcast_to(last[:, None], (b, t))

  def one_head(qk, kk, vk, pk):  # [B, T, G, H], [B, P, H], [B, P, H], [B, P]
    mask = MaskSpec(causal=True, q_positions=q_pos, kv_positions=pk)
    return attention_reference(qk, kk[:, :, None].astype(q.dtype), vk[:, :, None].astype(q.dtype), mask,
                               scale=scale, softcap=softcap, return_lse=True)

  out, lse = jax.vmap(one_head, in_axes=(2, 1, 1, 1), out_axes=(2, 2))(
      q.reshape(b, t, kh, n // kh, h), k_rows, v_rows, kv_pos)               # [B, T, K, G, H], [B, T, K, G]
  return out.reshape(b, t, n, h), lse.reshape(b, t, n)


def gather_blocks(k, v, block_indices, block_counts, block_size: int, take=take_rows):
  """The selected blocks of a heads-major cache, gathered: (k_rows, v_rows [B, K, M*C, H], positions [B, K, M*C]
  with _FAR at padding entries). `take(x, positions)` reads rows (device-resident by default; a host tier's gather
  moves only these rows)."""
  s_len = k.shape[2]
  sel = Selection(block_indices, block_counts, block_size)
  pos = sel.positions()                                                   # [B, K, M*C]
  kv_pos = jnp.where(sel.valid() & (pos < s_len), pos, _FAR)
  idx = jnp.clip(pos, 0, s_len - 1)
  return take(k, idx), take(v, idx), kv_pos


def attend_selection(q, k, v, sel: Selection, kv_lengths, *, softcap: float | None = None, impl: str = "auto",
                     take=None):
  """Attention over a selection, per kv head (Hs = K) or per query head (Hs = N).

  A per-query-head selection runs as G calls with one query head per kv head (group g: query heads k*G + g), so
  the block-sparse kernel needs no second layout.

  Args:
    q: [B, T, N, H].  k, v: [B, K, S, H].  sel: the selection.  kv_lengths: [B] filled positions.
    impl: the `ops.block_sparse_attention` impl ("auto", "reference", "xla", "pallas_triton", ...).
    take: None (device-resident k, v: the ops call), or a row gather `take(x, positions [B, K, P]) -> [B, K, P, H]`
      for caches held elsewhere (then the gathered rows are attended in jnp, and impl must be "auto").
  Returns:
    (out [B, T, N, H], lse [B, T, N]).
  """
  b, t, n, h = q.shape
  kh = k.shape[1]
  hs = sel.indices.shape[1]
  if take is not None and impl != "auto":
    raise ConfigError(f"selection attention over rows gathered from another tier runs in jnp; impl={impl!r} was "
                      f"asked (use impl='auto', or keep the cache on the device for the block-sparse kernels)")

  def call(qq, idx, cnt):
    if take is None:
      return block_sparse_attention(qq, k, v, idx, cnt, block_size=sel.block_size, impl=impl, softcap=softcap,
                                    kv_lengths=kv_lengths, return_lse=True)
    k_rows, v_rows, kv_pos = gather_blocks(k, v, idx, cnt, sel.block_size, take)
    return attend_rows(qq, k_rows, v_rows, kv_pos, kv_lengths, softcap=softcap)

  if hs == kh:
    return call(q, sel.indices, sel.counts)
  if hs != n:
    raise ShapeError(f"a selection has one row per kv head (K={kh}) or per query head (N={n}), got {hs}")
  g = n // kh
  qg = q.reshape(b, t, kh, g, h)
  idx = sel.indices.reshape(b, kh, g, -1)
  cnt = sel.counts.reshape(b, kh, g)
  parts = [call(qg[:, :, :, j], idx[:, :, j], cnt[:, :, j]) for j in range(g)]
  out = jnp.stack([p[0] for p in parts], axis=3).reshape(b, t, n, h)
  lse = jnp.stack([p[1] for p in parts], axis=3).reshape(b, t, n)
  return out, lse
