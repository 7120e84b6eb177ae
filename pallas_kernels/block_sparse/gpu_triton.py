"""Gather-block attention, Triton target: one program per (batch, kv head, split), a loop over its blocks.

Pallas-on-Triton is deprecated since jax 0.11; kept in its own file so it can be dropped. Rows are padded to a
power of two >= 16 (Triton dot tiles); each block is read with a dynamic index into the block pool.
"""

from __future__ import annotations

import functools

import jax
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from pallas_kernels.block_sparse.gather import GatherConfig, block_step, split_bounds
from pallas_kernels.tile_math import F32, softmax_finish, softmax_init


def _kernel(q_ref, qp_ref, k_ref, v_ref, idx_ref, start_ref, count_ref, len_ref, o_ref, lse_ref, *,
            cfg: GatherConfig, per_split: int):
  q, q_pos = q_ref[...], qp_ref[...][:, None]
  kv_len = len_ref[...][0]
  lo, hi = split_bounds(pl.program_id(2), per_split, count_ref[...][0])

  def body(i, carry):
    block = idx_ref[pl.ds(i, 1)]
    k = k_ref[block].reshape(k_ref.shape[1:])
    v = v_ref[block].reshape(v_ref.shape[1:])
    return block_step(q, q_pos, k, v, start_ref[pl.ds(i, 1)][0], kv_len, cfg, carry)

  out, lse = softmax_finish(*lax.fori_loop(lo, hi, body, softmax_init(*q.shape)))
  o_ref[...] = out
  lse_ref[...] = lse[:, 0]


@functools.partial(jax.jit, static_argnames=("cfg",))
def gather_attention(q, q_pos, k, v, indices, starts, counts, kv_len, *, cfg: GatherConfig):
  """Per-split partial attention over gathered blocks.

  Args:
    q: [B, K, R, H] (R a power of two >= 16).  q_pos: [B, R].  k, v: [Bs, K, NB, C, H].
    indices, starts: [B, K, M] int32.  counts: [B, K] int32.  kv_len: [B] int32.
  Returns:
    (out [B, K, P, R, H] fp32, lse [B, K, P, R] fp32) with P = cfg.num_splits.
  """
  b, kv_heads, r, h = q.shape
  shared, nb, c = k.shape[0] == 1, k.shape[2], k.shape[3]
  m, p = indices.shape[2], cfg.num_splits
  per_split = -(-m // p)
  pool = pl.BlockSpec((None, None, nb, c, h), lambda b, k, s: (0 if shared else b, k, 0, 0, 0))
  per_head = lambda *shape: pl.BlockSpec((None, None) + shape, lambda b, k, s: (b, k) + (0,) * len(shape))  # noqa
  return pl.pallas_call(
      functools.partial(_kernel, cfg=cfg, per_split=per_split), grid=(b, kv_heads, p),
      in_specs=[per_head(r, h), pl.BlockSpec((None, r), lambda b, k, s: (b, 0)), pool, pool, per_head(m),
                per_head(m), per_head(1), pl.BlockSpec((None, 1), lambda b, k, s: (b, 0))],
      out_specs=[pl.BlockSpec((None, None, None, r, h), lambda b, k, s: (b, k, s, 0, 0)),
                 pl.BlockSpec((None, None, None, r), lambda b, k, s: (b, k, s, 0))],
      out_shape=[jax.ShapeDtypeStruct((b, kv_heads, p, r, h), F32), jax.ShapeDtypeStruct((b, kv_heads, p, r), F32)],
      compiler_params=pltriton.CompilerParams(num_warps=4, num_stages=2), interpret=cfg.interpret,
      name="lcjax_gather_attention_triton",
  )(q, q_pos, k, v, indices, starts, counts[..., None], kv_len[:, None])
