"""Block-sparse attention: a few queries over a per-(batch, kv head) list of selected key blocks.

The kernel behind LongGen's sparse patterns, Squeezed Attention, Quest / RetroLM page retrieval and LongHeads chunk
selection; split-K decode and paged decode (`pallas_kernels.decode_attention`) are the same kernel with dense and
page-table index lists. Targets: "triton", "tpu", "mosaic_gpu" (Hopper, TMA gathers), "reference" (jnp gather).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from pallas_kernels import tuning
from pallas_kernels.block_sparse import gpu_mosaic, gpu_triton, tpu
from pallas_kernels.block_sparse.gather import GatherConfig
from pallas_kernels.block_sparse.reference import block_sparse_reference, gathered_reference
from pallas_kernels.tile_math import merge_partials, next_power_of_2, round_up

TARGETS = {"triton": gpu_triton.gather_attention, "tpu": tpu.gather_attention,
           "mosaic_gpu": gpu_mosaic.gather_attention}


def pack_rows(q, q_pos, kv_heads: int, rows: int):
  """[B, T, N, H] queries and [B, T] positions -> [B, K, R, H], [B, R]: row g * T + t (zero-padded to `rows`)."""
  b, t, n, h = q.shape
  groups = n // kv_heads
  packed = jnp.transpose(q.reshape(b, t, kv_heads, groups, h), (0, 2, 3, 1, 4)).reshape(b, kv_heads, groups * t, h)
  pos = jnp.tile(q_pos.astype(jnp.int32), (1, groups))
  pad = rows - groups * t
  return jnp.pad(packed, ((0, 0), (0, 0), (0, pad), (0, 0))), jnp.pad(pos, ((0, 0), (0, pad)), constant_values=-1)


def unpack_rows(out, t: int, n: int):
  """[B, K, R, H] -> [B, T, N, H] (drops padded rows)."""
  b, kv_heads, _, h = out.shape
  out = out[:, :, :(n // kv_heads) * t].reshape(b, kv_heads, n // kv_heads, t, h)
  return jnp.transpose(out, (0, 3, 1, 2, 4)).reshape(b, t, n, h)


def unpack_result(out, lse, t: int, n: int, dtype, return_lse: bool = False):
  """Packed rows back to heads: out [B, K, R, H] -> [B, T, N, H] in `dtype`, and lse [B, K, R] -> [B, T, N] fp32.

  Returns:
    out, or (out, lse) with return_lse (lse -inf where a row sees no key; out is 0 there).
  """
  out = unpack_rows(out, t, n).astype(dtype)
  if not return_lse:
    return out
  return out, unpack_rows(lse[..., None], t, n)[..., 0].astype(jnp.float32)


def gather_blocks(q, q_pos, k_blocks, v_blocks, indices, starts, counts, kv_len, *, target: str, causal=True,
                  window=None, sink=0, scale=None, softcap=None, num_splits=None, interpret=False,
                  return_lse=False):
  """Runs the gather-block kernel of `target` and merges its splits.

  Args:
    q: [B, T, N, H].  q_pos: [B, T] int32 query positions.  k_blocks, v_blocks: [Bs, K, NB, C, H].
    indices, starts: [B, K, M] int32 block ids and first positions.  counts: [B, K].  kv_len: [B].
    return_lse: also return the split-merged log-sum-exp of the visible scores.
  Returns:
    [B, T, N, H] in q's dtype; with return_lse (out, lse [B, T, N] fp32, -inf where no key is visible).
  """
  if target not in TARGETS:
    raise ValueError(f"unknown gather-block target {target!r}; known: {sorted(TARGETS)}")
  b, t, n, h = q.shape
  kv_heads = k_blocks.shape[1]
  rows = (n // kv_heads) * t
  rows = {"triton": max(16, next_power_of_2(rows)), "mosaic_gpu": gpu_mosaic.ROWS_PER_CTA}.get(target, rows)
  splits = num_splits or tuning.block_sizes("gather_blocks", target)["num_splits"]
  cfg = GatherConfig(bool(causal), window, int(sink), 1.0 / math.sqrt(h) if scale is None else float(scale),
                     None if softcap is None else float(softcap), max(1, min(int(splits), indices.shape[2])),
                     bool(interpret))
  qr, pr = pack_rows(q, q_pos, kv_heads, rows)
  nb = k_blocks.shape[2]
  args = (jnp.clip(indices, 0, nb - 1).astype(jnp.int32), starts.astype(jnp.int32), counts.astype(jnp.int32),
          kv_len.astype(jnp.int32))
  out, lse = TARGETS[target](qr, pr, k_blocks, v_blocks, *args, cfg=cfg)
  out, lse = merge_partials(out, lse, axis=2)
  return unpack_result(out, lse, t, n, q.dtype, return_lse)


def as_blocks(x, block_size: int):
  """Heads-major cache [B, K, S, H] -> [B, K, S / C, C, H] (zero-padded to a multiple of C)."""
  b, kv_heads, s, h = x.shape
  sp = round_up(s, block_size)
  if sp != s:
    x = jnp.pad(x, ((0, 0), (0, 0), (0, sp - s), (0, 0)))
  return x.reshape(b, kv_heads, sp // block_size, block_size, h)


def default_q_positions(batch: int, t: int, kv_len):
  """Queries at the end of the valid keys: kv_len - T + arange(T), [B, T] int32."""
  return (jnp.asarray(kv_len, jnp.int32).reshape(-1, 1) - t + jnp.arange(t, dtype=jnp.int32)) * jnp.ones(
      (batch, 1), jnp.int32)


def block_sparse_attention(q, k, v, block_indices, block_counts, *, block_size: int, target: str,
                           q_positions=None, kv_lengths=None, scale=None, softcap=None, num_splits=None,
                           interpret=False, return_lse=False):
  """Attention of q over the selected key blocks of a heads-major cache.

  Args:
    q: [B, T, N, H].  k, v: [B, K, S, H].  block_indices: [B, K, M] int32 block ids (the first block_counts
      distinct).  block_counts: [B, K] int32.  block_size: keys per block (C).  target: "triton", "tpu",
      "mosaic_gpu" or "reference".  q_positions: [B, T] (given: causal within the selection).  kv_lengths: [B]
      valid keys (default S).  num_splits: split-K parts (default: tuning table).  return_lse: also return the
      log-sum-exp of the scaled (soft-capped) visible scores.
  Returns:
    [B, T, N, H] in q's dtype; with return_lse (out, lse [B, T, N] fp32, -inf and out 0 where no key is visible).
  """
  b, t, n, _ = q.shape
  s = k.shape[2]
  kv_len = jnp.full((b,), s, jnp.int32) if kv_lengths is None else jnp.asarray(kv_lengths, jnp.int32)
  causal = q_positions is not None
  q_pos = default_q_positions(b, t, kv_len) if q_positions is None else q_positions.astype(jnp.int32)
  if target == "reference":
    qr, pr = pack_rows(q, q_pos, k.shape[1], (n // k.shape[1]) * t)
    out, lse = block_sparse_reference(qr, pr, as_blocks(k, block_size).reshape(b, k.shape[1], -1, k.shape[3]),
                                    as_blocks(v, block_size).reshape(b, k.shape[1], -1, k.shape[3]),
                                    block_indices, block_counts, kv_len, block_size=block_size, causal=causal,
                                    scale=1.0 / math.sqrt(q.shape[-1]) if scale is None else scale, softcap=softcap)
    return unpack_result(out, lse, t, n, q.dtype, return_lse)
  starts = block_indices.astype(jnp.int32) * block_size
  return gather_blocks(q, q_pos, as_blocks(k, block_size), as_blocks(v, block_size), block_indices, starts,
                       block_counts, kv_len, target=target, causal=causal, scale=scale, softcap=softcap,
                       num_splits=num_splits, interpret=interpret, return_lse=return_lse)


__all__ = ["GatherConfig", "TARGETS", "block_sparse_attention", "block_sparse_reference", "gather_blocks",
           "gathered_reference", "pack_rows", "unpack_result", "unpack_rows"]
