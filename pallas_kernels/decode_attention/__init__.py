"""Decode attention: one query token (or a few, speculative) against a long KV cache, split-K, GQA-packed.

Both variants are the gather-block kernel of `pallas_kernels.block_sparse` with a particular index table:
  dense  (`decode_attention`):       cache [B, K, S, H] cut into blocks of C, indices = arange(S / C);
  paged  (`paged_decode_attention`): page pool [K, P, C, H] shared by the batch, indices = the page table.
The block list is split into `num_splits` parts computed in parallel, then merged by log-sum-exp (split-K).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from pallas_kernels.block_sparse import as_blocks, default_q_positions, gather_blocks, pack_rows, unpack_rows
from pallas_kernels.decode_attention.reference import paged_reference
from pallas_kernels.tile_math import next_power_of_2, round_up


# Smallest block covering S that each target can tile: Triton powers of two, TPU sublanes of 8, wgmma 64 columns.
_BLOCK_ROUNDING = {"triton": next_power_of_2, "tpu": lambda s: round_up(s, 8), "mosaic_gpu": lambda s: round_up(s, 64)}


def decode_attention(q, k, v, *, target: str, q_positions=None, kv_lengths=None, causal: bool = True,
                     window: int | None = None, sink: int = 0, block_size: int = 128, scale=None, softcap=None,
                     num_splits=None, interpret: bool = False):
  """Split-K decode over a dense heads-major cache.

  Args:
    q: [B, T, N, H].  k, v: [B, K, S, H].  target: "triton", "tpu" or "mosaic_gpu" (f16/bf16, G * T <= 64).
    q_positions: [B, T] absolute positions (default: the last T of the valid keys).  kv_lengths: [B] (default S).
    causal, window, sink: mask pattern.  block_size: keys per block (clipped to the padded S).
    num_splits: split-K parts.  interpret: run in the Pallas interpreter.
  Returns:
    [B, T, N, H] in q's dtype.
  """
  b, t = q.shape[:2]
  s = k.shape[2]
  c = min(block_size, _BLOCK_ROUNDING.get(target, lambda s: s)(s))
  kv_len = jnp.full((b,), s, jnp.int32) if kv_lengths is None else jnp.asarray(kv_lengths, jnp.int32)
  q_pos = default_q_positions(b, t, kv_len) if q_positions is None else q_positions.astype(jnp.int32)
  kb, vb = as_blocks(k, c), as_blocks(v, c)
  nb = kb.shape[2]
  ids = jnp.broadcast_to(jnp.arange(nb, dtype=jnp.int32), (b, k.shape[1], nb))
  return gather_blocks(q, q_pos, kb, vb, ids, ids * c, jnp.full((b, k.shape[1]), nb, jnp.int32), kv_len,
                       target=target, causal=causal, window=window, sink=sink, scale=scale, softcap=softcap,
                       num_splits=num_splits, interpret=interpret)


def paged_decode_attention(q, k_pages, v_pages, page_table, lengths, *, target: str, q_positions=None,
                           causal: bool = True, window: int | None = None, sink: int = 0, scale=None, softcap=None,
                           num_splits=None, interpret: bool = False):
  """Split-K decode reading a shared page pool through a page table.

  Args:
    q: [B, T, N, H].  k_pages, v_pages: [K, P, C, H] (TPU: C % 8 == 0).  page_table: [B, M] int32 physical page
      of each logical page.  lengths: [B] tokens in each sequence (<= M * C).  target: "triton", "tpu",
      "mosaic_gpu" (C % 64 == 0) or "reference".  q_positions: [B, T] (default: the last T tokens).  Other arguments as `decode_attention`.
  Returns:
    [B, T, N, H] in q's dtype.
  """
  b, t, n, h = q.shape
  kv_heads, _, c, _ = k_pages.shape
  m = page_table.shape[1]
  lengths = jnp.asarray(lengths, jnp.int32)
  q_pos = default_q_positions(b, t, lengths) if q_positions is None else q_positions.astype(jnp.int32)
  mask = dict(causal=causal, window=window, sink=sink, softcap=softcap)
  if target == "reference":
    qr, pr = pack_rows(q, q_pos, kv_heads, (n // kv_heads) * t)
    out, _ = paged_reference(qr, pr, k_pages, v_pages, page_table.astype(jnp.int32), lengths,
                             scale=1.0 / math.sqrt(h) if scale is None else scale, **mask)
    return unpack_rows(out, t, n).astype(q.dtype)
  ids = jnp.broadcast_to(page_table.astype(jnp.int32)[:, None, :], (b, kv_heads, m))
  starts = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32) * c, (b, kv_heads, m))
  counts = jnp.broadcast_to((-(-lengths // c))[:, None], (b, kv_heads))
  return gather_blocks(q, q_pos, k_pages[None], v_pages[None], ids, starts, counts, lengths, target=target,
                       scale=scale, num_splits=num_splits, interpret=interpret, **mask)


__all__ = ["decode_attention", "paged_decode_attention", "paged_reference"]
