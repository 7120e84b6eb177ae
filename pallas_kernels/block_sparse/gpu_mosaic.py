"""Gather-block attention, Mosaic GPU target (Hopper): one CTA per (kv head, split, batch), TMA-gathered blocks.

The CTA copies its row of the index table (block ids, starts, count, length) into SMEM, then walks its blocks with
a two-slot double buffer: while `wgmma` computes S = Q K^T and O += P V on block i, the TMA engine fetches block
i + 1 (`copy_gmem_to_smem` of `k[b, kh, indices[i + 1]]`, the index read from SMEM). The GQA group and the T
query tokens are packed into the 64 wgmma rows (G * T <= 64). Key positions are `start + iota` in the WGMMA column
layout, masked with the shared `tile_visible` rule. Inputs must be f16/bf16, blocks of C = 64k keys.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels.block_sparse.gather import GatherConfig, split_bounds
from pallas_kernels.mosaic_gpu_math import ROWS, full, load_tiles, mm, scores, smem_transforms, stage, store_tiles
from pallas_kernels.tile_math import F32, MASK_VALUE, PAD_KV_SEGMENT, round_up, tile_visible

ROWS_PER_CTA = 64  # one warpgroup's wgmma M


def fits(dtype, rows: int, block_size: int, head_dim: int) -> bool:
  """Whether a call fits this kernel: f16/bf16, at most 64 packed rows (G * T), blocks and H multiples of 64."""
  return (jnp.dtype(dtype) in (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16)) and rows <= ROWS_PER_CTA
          and block_size % 64 == 0 and head_dim % 64 == 0)


def _fetch(k_ref, v_ref, meta_smem, src, kh, i, slot, bufs, barriers):
  k_smem, v_smem = bufs
  block = meta_smem[i]
  plgpu.copy_gmem_to_smem(k_ref.at[src, kh, block], k_smem.at[slot], barriers.at[slot])
  plgpu.copy_gmem_to_smem(v_ref.at[src, kh, block], v_smem.at[slot], barriers.at[2 + slot])


def _kernel(q_ref, qp_ref, k_ref, v_ref, meta_ref, o_ref, lse_ref, q_smem, p_smem, k_smem, v_smem, meta_smem,
            o_smem, lse_smem, barriers, *, cfg: GatherConfig, per_split: int, max_blocks: int, shared: bool):
  kh, split, b = lax.axis_index("kv_heads"), lax.axis_index("splits"), lax.axis_index("batch")
  rows, c = q_smem.shape[0], k_smem.shape[1]
  src = 0 if shared else b
  load_tiles([(q_ref.at[b, kh], q_smem), (meta_ref.at[b, kh], meta_smem)], barriers, first=4)
  q_pos = plgpu.load(qp_ref.at[b], layout=ROWS)
  count, kv_len = meta_smem[2 * max_blocks], meta_smem[2 * max_blocks + 1]
  lo, hi = split_bounds(split, per_split, count)
  fetch = functools.partial(_fetch, k_ref, v_ref, meta_smem, src, kh, bufs=(k_smem, v_smem), barriers=barriers)

  @pl.when(lo < hi)
  def _first():
    fetch(lo, 0)

  def step(i, carry):
    acc, m, l = carry
    slot = lax.rem(i - lo, 2)

    @pl.when(i + 1 < hi)
    def _next():  # the other slot's wgmmas finished in the previous step (their results were read)
      fetch(i + 1, 1 - slot)

    plgpu.barrier_wait(barriers.at[slot])
    plgpu.barrier_wait(barriers.at[2 + slot])
    s, _ = scores(mm(q_smem, k_smem.at[slot].T, (rows, c)), cfg)
    kv_pos = meta_smem[max_blocks + i] + plgpu.broadcasted_iota(jnp.int32, s.shape, 1, layout=plgpu.Layout.WGMMA)
    qp = full(q_pos, s.shape, 0)
    ok = tile_visible(qp, jnp.zeros_like(qp), kv_pos, jnp.where(kv_pos < kv_len, 0, PAD_KV_SEGMENT), **cfg.mask)
    s = jnp.where(ok, s, MASK_VALUE)
    m_new = jnp.maximum(m, s.max(axis=1))
    corr = jnp.exp(m - m_new)
    p = jnp.where(ok, jnp.exp(s - full(m_new, s.shape, 0)), 0.0)
    stage(p_smem, p)
    acc = acc * full(corr, acc.shape, 0) + mm(p_smem, v_smem.at[slot], acc.shape)
    return acc, m_new, l * corr + p.sum(axis=1)

  init = (plgpu.layout_cast(jnp.zeros(q_smem.shape, F32), plgpu.Layout.WGMMA),
          plgpu.layout_cast(jnp.full((rows,), MASK_VALUE, F32), ROWS), plgpu.layout_cast(jnp.zeros((rows,), F32), ROWS))
  acc, m, l = lax.fori_loop(lo, hi, step, init)
  has = l > 0
  safe = jnp.where(has, l, 1.0)
  o_smem[...] = acc / full(safe, acc.shape, 0)
  lse_smem[...] = jnp.where(has, m + jnp.log(safe), -jnp.inf)
  store_tiles([(o_smem, o_ref.at[b, kh, split]), (lse_smem, lse_ref.at[b, kh, split])])


@functools.partial(jax.jit, static_argnames=("cfg",))
def gather_attention(q, q_pos, k, v, indices, starts, counts, kv_len, *, cfg: GatherConfig):
  """Per-split partial attention over gathered blocks (the `gpu_triton` / `tpu` interface).

  Args:
    q: [B, K, 64, H] f16/bf16 (rows padded to 64).  q_pos: [B, 64].  k, v: [Bs, K, NB, C, H] (C % 64 == 0).
    indices, starts: [B, K, M] int32.  counts: [B, K] int32.  kv_len: [B] int32.
  Returns:
    (out [B, K, P, 64, H] fp32, lse [B, K, P, 64] fp32) with P = cfg.num_splits.
  """
  b, kv_heads, rows, h = q.shape
  c, m, p = k.shape[3], indices.shape[2], cfg.num_splits
  if rows != ROWS_PER_CTA or not fits(q.dtype, rows, c, h):
    raise ValueError(f"mosaic_gpu gather-block attention takes f16/bf16, 64 packed rows (G * T <= 64), blocks and H "
                     f"multiples of 64; got {q.dtype}, rows={rows}, C={c}, H={h}")
  mp = round_up(m, 4)  # 16-byte TMA rows
  pad = lambda x: jnp.pad(x, ((0, 0), (0, 0), (0, mp - m)))  # noqa: E731
  meta = jnp.concatenate([pad(indices), pad(starts), counts[..., None], jnp.broadcast_to(kv_len[:, None, None], (
      b, kv_heads, 1)), jnp.zeros((b, kv_heads, 2), jnp.int32)], axis=2)
  smem = lambda shape, dtype: plgpu.SMEM(shape, dtype, transforms=smem_transforms(dtype, shape[-1]))  # noqa: E731
  kernel = plgpu.kernel(
      functools.partial(_kernel, cfg=cfg, per_split=-(-m // p), max_blocks=mp, shared=k.shape[0] == 1),
      out_type=(jax.ShapeDtypeStruct((b, kv_heads, p, rows, h), F32), jax.ShapeDtypeStruct((b, kv_heads, p, rows), F32)),
      scratch_types=(smem((rows, h), q.dtype), smem((rows, c), q.dtype), smem((2, c, h), k.dtype),
                     smem((2, c, h), v.dtype), plgpu.SMEM((2 * mp + 4,), jnp.int32), plgpu.SMEM((rows, h), F32),
                     plgpu.SMEM((rows,), F32), plgpu.Barrier(num_barriers=6)),
      grid=(kv_heads, p, b), grid_names=("kv_heads", "splits", "batch"),
      interpret=plgpu.InterpretGPUParams() if cfg.interpret else None)
  return kernel(q, q_pos, k, v, meta)
