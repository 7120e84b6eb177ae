"""Flash attention forward, Mosaic GPU target (Hopper, sm_90): TMA copies into SMEM, wgmma, pipelined K/V.

One CTA (one warpgroup, 128 threads) per (query head, query block of 64 rows, batch). The query tile is TMA-copied
into swizzled SMEM once; `plgpu.emit_pipeline` streams key/value tiles (and their positions / segment ids) through
`max_concurrent_steps` SMEM buffers with TMA, so the next tiles load while `wgmma` computes S = Q K^T and O += P V
on the current ones (accumulators in registers, WGMMA layout). The mask is built from positions loaded in the
WGMMA row/column layouts, with the same rule (`tile_visible`) as every other target. Inputs must be f16/bf16
(wgmma operands). Every key tile is visited (no block skipping in this version); the backward pass is left to the
caller (`lcjax.ops.attention_pallas` uses the XLA blockwise backward). An Ampere path (`plgpu.mma`) is not built.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels.flash_attention.layout import FlashConfig
from pallas_kernels.tile_math import F32, MASK_VALUE, tile_visible

_ROWS = plgpu.Layout.WGMMA.reduce(1)  # a value per row of a [bq, bk] WGMMA tile
_COLS = plgpu.Layout.WGMMA.reduce(0)  # a value per column


def _transforms(dtype, minor: int):
  swizzle = plgpu.find_swizzle(minor * jnp.dtype(dtype).itemsize * 8)
  return (plgpu.TilingTransform((8, swizzle // jnp.dtype(dtype).itemsize)), plgpu.SwizzleTransform(swizzle))


def _full(x, shape, dim):
  return lax.broadcast_in_dim(x, shape, [dim])


def _kv_step(q_smem, p_smem, q_pos, q_seg, cfg: FlashConfig, _, k_smem, v_smem, kp_smem, ks_smem, carry):
  """One pipelined key tile: S = Q K^T (wgmma), masked online softmax, O = c O + P V (P staged in SMEM)."""
  acc, m, l = carry
  bq, bk = q_smem.shape[0], k_smem.shape[0]

  def qk(acc_ref):
    plgpu.wgmma(acc_ref, q_smem, k_smem.T)
    return acc_ref[...]

  s = pl.run_scoped(qk, plgpu.ACC((bq, bk), F32)) * cfg.scale
  if cfg.softcap is not None:
    s = cfg.softcap * jnp.tanh(s / cfg.softcap)
  kp, ks = plgpu.load(kp_smem, layout=_COLS), plgpu.load(ks_smem, layout=_COLS)
  ok = tile_visible(_full(q_pos, s.shape, 0), _full(q_seg, s.shape, 0), _full(kp, s.shape, 1),
                    _full(ks, s.shape, 1), **cfg.mask)
  s = jnp.where(ok, s, MASK_VALUE)
  m_new = jnp.maximum(m, s.max(axis=1))
  corr = jnp.exp(m - m_new)
  p = jnp.where(ok, jnp.exp(s - _full(m_new, s.shape, 0)), 0.0)
  l = l * corr + p.sum(axis=1)
  p_smem[...] = p.astype(p_smem.dtype)
  plgpu.commit_smem()  # make the register writes visible to the wgmma (async proxy)

  def pv(acc_ref):
    plgpu.wgmma(acc_ref, p_smem, v_smem)
    return acc_ref[...]

  pv_tile = pl.run_scoped(pv, plgpu.ACC(acc.shape, F32))
  return acc * _full(corr, acc.shape, 0) + pv_tile, m_new, l


def _kernel(q_ref, k_ref, v_ref, qp_ref, qs_ref, kp_ref, ks_ref, o_ref, lse_ref, q_smem, p_smem, lse_smem, barrier, *,
            cfg: FlashConfig, groups: int):
  b, n, i = lax.axis_index("batch"), lax.axis_index("heads"), lax.axis_index("q_seq")
  bq, h = q_smem.shape
  bk = cfg.block_k
  kv_head = lax.div(n, jnp.array(groups, n.dtype))
  rows = pl.ds(i * bq, bq)
  plgpu.copy_gmem_to_smem(q_ref.at[b, n, rows], q_smem, barrier)
  q_pos, q_seg = plgpu.load(qp_ref.at[b, rows], layout=_ROWS), plgpu.load(qs_ref.at[b, rows], layout=_ROWS)
  plgpu.barrier_wait(barrier)
  init = (plgpu.layout_cast(jnp.zeros((bq, h), F32), plgpu.Layout.WGMMA),
          plgpu.layout_cast(jnp.full((bq,), MASK_VALUE, F32), _ROWS),
          plgpu.layout_cast(jnp.zeros((bq,), F32), _ROWS))
  tile = lambda: plgpu.BlockSpec((bk, h), lambda j: (j, 0), transforms=_transforms(q_ref.dtype, h))  # noqa: E731
  tokens = lambda: plgpu.BlockSpec((bk,), lambda j: (j,))  # noqa: E731
  pipeline = plgpu.emit_pipeline(
      functools.partial(_kv_step, q_smem, p_smem, q_pos, q_seg, cfg), grid=(k_ref.shape[2] // bk,),
      in_specs=[tile(), tile(), tokens(), tokens()], max_concurrent_steps=2, init_carry=init)
  acc, m, l = pipeline(k_ref.at[b, kv_head], v_ref.at[b, kv_head], kp_ref.at[b], ks_ref.at[b])
  has = l > 0
  safe = jnp.where(has, l, 1.0)
  q_smem[...] = (acc / _full(safe, acc.shape, 0)).astype(q_smem.dtype)  # the output reuses Q's buffer
  lse_smem[...] = jnp.where(has, m + jnp.log(safe), -jnp.inf)
  plgpu.commit_smem()
  plgpu.copy_smem_to_gmem(q_smem, o_ref.at[b, n, rows])
  plgpu.copy_smem_to_gmem(lse_smem, lse_ref.at[b, n, rows])
  plgpu.wait_smem_to_gmem(0)


@functools.partial(jax.jit, static_argnames=("cfg",))
def flash_forward(q, k, v, q_pos, q_seg, kv_pos, kv_seg, *, cfg: FlashConfig):
  """Forward kernel on the padded heads-major layout (Tp a multiple of 64, Sp of block_k; H a multiple of 64).

  Args:
    q: [B, N, Tp, H] f16/bf16.  k, v: [B, K, Sp, H].  q_pos, q_seg: [B, Tp] int32.  kv_pos, kv_seg: [B, Sp].
  Returns:
    (out [B, N, Tp, H] in q's dtype, lse [B, N, Tp] fp32).
  """
  b, n, tp, h = q.shape
  if jnp.dtype(q.dtype) not in (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16)) or h % 64:
    raise ValueError(f"mosaic_gpu flash attention takes f16/bf16 with H a multiple of 64; got {q.dtype}, H={h}")
  kernel = plgpu.kernel(
      functools.partial(_kernel, cfg=cfg, groups=n // k.shape[1]),
      out_type=(jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, n, tp), F32)),
      scratch_types=(plgpu.SMEM((cfg.block_q, h), q.dtype, transforms=_transforms(q.dtype, h)),
                     plgpu.SMEM((cfg.block_q, cfg.block_k), q.dtype, transforms=_transforms(q.dtype, cfg.block_k)),
                     plgpu.SMEM((cfg.block_q,), F32), plgpu.Barrier(num_barriers=1)),
      grid=(n, tp // cfg.block_q, b), grid_names=("heads", "q_seq", "batch"),
      compiler_params=plgpu.CompilerParams(approx_math=False),
      interpret=plgpu.InterpretGPUParams() if cfg.interpret else None)
  return kernel(q, k, v, q_pos, q_seg, kv_pos, kv_seg)
