"""Gather-block attention, TPU target (Mosaic TPU): grid (batch, kv head, split, block), paged-attention style.

The index table, block starts, counts and lengths are scalar-prefetched into SMEM; the key/value BlockSpecs read
block `indices[b, k, i]` straight from HBM (steps past `counts` re-point at the last valid block: no new DMA, and
the update is skipped). Online-softmax state lives in VMEM scratch across the innermost (sequential) axis.
Blocks of C keys need C % 8 == 0 (sublane tiling); H is a full dimension.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from pallas_kernels.block_sparse.gather import GatherConfig, block_step, split_bounds
from pallas_kernels.tile_math import F32, MASK_VALUE, softmax_finish


def _kernel(idx_ref, start_ref, count_ref, len_ref, q_ref, qp_ref, k_ref, v_ref, o_ref, lse_ref, m_ref, l_ref,
            acc_ref, *, cfg: GatherConfig, per_split: int, max_blocks: int):
  b, kh, s, j = (pl.program_id(a) for a in range(4))
  row = b * pl.num_programs(1) + kh
  lo, hi = split_bounds(s, per_split, count_ref[row])

  @pl.when(j == 0)
  def _init():
    m_ref[...] = jnp.full(m_ref.shape, MASK_VALUE, F32)
    l_ref[...] = jnp.zeros(l_ref.shape, F32)
    acc_ref[...] = jnp.zeros(acc_ref.shape, F32)

  @pl.when(lo + j < hi)
  def _update():
    start = start_ref[row * max_blocks + lo + j]
    carry = block_step(q_ref[...], qp_ref[...], k_ref[...], v_ref[...], start, len_ref[b], cfg,
                       (m_ref[...], l_ref[...], acc_ref[...]))
    m_ref[...], l_ref[...], acc_ref[...] = carry

  @pl.when(j == pl.num_programs(3) - 1)
  def _finish():
    out, lse = softmax_finish(m_ref[...], l_ref[...], acc_ref[...])
    o_ref[...], lse_ref[...] = out, lse


def _block_map(shared: bool, per_split: int, max_blocks: int):
  def index(b, kh, s, j, idx_ref, start_ref, count_ref, len_ref):
    row = b * pl.num_programs(1) + kh
    lo, hi = split_bounds(s, per_split, count_ref[row])
    i = jnp.maximum(jnp.minimum(lo + j, hi - 1), 0)  # past the end: stay on the last valid block
    return (0 if shared else b, kh, idx_ref[row * max_blocks + i], 0, 0)

  return index


@functools.partial(jax.jit, static_argnames=("cfg",))
def gather_attention(q, q_pos, k, v, indices, starts, counts, kv_len, *, cfg: GatherConfig):
  """Per-split partial attention over gathered blocks.

  Args:
    q: [B, K, R, H].  q_pos: [B, R].  k, v: [Bs, K, NB, C, H] (C % 8 == 0).
    indices, starts: [B, K, M] int32.  counts: [B, K] int32.  kv_len: [B] int32.
  Returns:
    (out [B, K, P, R, H] fp32, lse [B, K, P, R] fp32) with P = cfg.num_splits.
  """
  b, kv_heads, r, h = q.shape
  c, m, p = k.shape[3], indices.shape[2], cfg.num_splits
  per_split = -(-m // p)
  pool = pl.BlockSpec((None, None, None, c, h), _block_map(k.shape[0] == 1, per_split, m))
  rows = lambda last: pl.BlockSpec((None, None, r, last), lambda b, kh, s, j, *_: (b, kh, 0, 0))  # noqa: E731
  parts = lambda last: pl.BlockSpec((None, None, None, r, last), lambda b, kh, s, j, *_: (b, kh, s, 0, 0))  # noqa
  grid_spec = pltpu.PrefetchScalarGridSpec(
      num_scalar_prefetch=4, grid=(b, kv_heads, p, per_split),
      in_specs=[rows(h), pl.BlockSpec((None, r, 1), lambda b, kh, s, j, *_: (b, 0, 0)), pool, pool],
      out_specs=[parts(h), parts(1)],
      scratch_shapes=[pltpu.VMEM((r, 1), F32), pltpu.VMEM((r, 1), F32), pltpu.VMEM((r, h), F32)])
  out, lse = pl.pallas_call(
      functools.partial(_kernel, cfg=cfg, per_split=per_split, max_blocks=m), grid_spec=grid_spec,
      out_shape=[jax.ShapeDtypeStruct((b, kv_heads, p, r, h), F32),
                 jax.ShapeDtypeStruct((b, kv_heads, p, r, 1), F32)],
      compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "parallel", "parallel", "arbitrary")),
      interpret=pltpu.InterpretParams() if cfg.interpret else False, name="lcjax_gather_attention_tpu",
  )(indices.reshape(-1), starts.reshape(-1), counts.reshape(-1), kv_len, q, q_pos[..., None], k, v)
  return out, lse[..., 0]
