"""Flash attention, Mosaic GPU target (Hopper, sm_90): TMA copies into SMEM, wgmma, pipelined tiles; fwd + bwd.

Forward: one CTA (one warpgroup) per (query head, 64-row query tile, batch). The query tile is TMA-copied into
swizzled SMEM once; `plgpu.emit_pipeline` streams key/value tiles (and their positions / segment ids) through two
SMEM buffers with TMA, so the next tiles load while `wgmma` computes S = Q K^T and O += P V on the current ones
(accumulators in registers, WGMMA layout; P is staged in SMEM as the second wgmma's A operand). Masks come from
positions loaded in the WGMMA row/column layouts with the rule every target shares (`tile_visible`); tiles that
the splash-style liveness table (`layout.block_liveness`, one SMEM row per CTA) marks dead skip their compute.
Backward (FlashAttention-2): a dQ kernel over key tiles and a dK/dV kernel per query head over query tiles (keys on
the wgmma rows: S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q), folded over the GQA group outside.
Inputs must be f16/bf16 (wgmma operands), H a multiple of 64. No producer/consumer warp specialisation, and no
Ampere (`plgpu.mma`) path.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels.flash_attention.layout import FlashConfig, block_liveness, fold_groups, row_delta
from pallas_kernels.mosaic_gpu_math import (COLS, ROWS, full, load_tiles, mm, scores, smem_transforms, stage,
                                            store_tiles, visible)
from pallas_kernels.tile_math import F32, MASK_VALUE, round_up, score_grads


def _live_only(step, live_smem):
  """A pipeline body that skips the compute of dead tiles (splash-style block liveness read from SMEM)."""

  def body(indices, *refs_and_carry):
    *refs, carry = refs_and_carry
    return lax.cond(live_smem[indices[0]] != 0, lambda c: step(indices, *refs, c), lambda c: c, carry)

  return body


def _live_rows(live):
  """[B, X, n] liveness -> int32 rows padded to a multiple of 4 entries (16-byte TMA rows)."""
  return jnp.pad(live, ((0, 0), (0, 0), (0, round_up(live.shape[2], 4) - live.shape[2])))


def _kv_step(q_smem, p_smem, q_pos, q_seg, cfg: FlashConfig, _, k_smem, v_smem, kp_smem, ks_smem, carry):
  """One pipelined key tile: S = Q K^T (wgmma), masked online softmax, O = c O + P V (P staged in SMEM)."""
  acc, m, l = carry
  bq, bk = q_smem.shape[0], k_smem.shape[0]
  s, _ = scores(mm(q_smem, k_smem.T, (bq, bk)), cfg)
  ok = visible(q_pos, q_seg, plgpu.load(kp_smem, layout=COLS), plgpu.load(ks_smem, layout=COLS), s.shape, 0, cfg)
  s = jnp.where(ok, s, MASK_VALUE)
  m_new = jnp.maximum(m, s.max(axis=1))
  corr = jnp.exp(m - m_new)
  p = jnp.where(ok, jnp.exp(s - full(m_new, s.shape, 0)), 0.0)
  l = l * corr + p.sum(axis=1)
  stage(p_smem, p)
  return acc * full(corr, acc.shape, 0) + mm(p_smem, v_smem, acc.shape), m_new, l


def _kernel(q_ref, k_ref, v_ref, qp_ref, qs_ref, kp_ref, ks_ref, live_ref, o_ref, lse_ref, q_smem, p_smem, lse_smem,
            live_smem, barrier, *, cfg: FlashConfig, groups: int):
  b, n, i = lax.axis_index("batch"), lax.axis_index("heads"), lax.axis_index("q_seq")
  bq, h = q_smem.shape
  bk = cfg.block_k
  kv_head = lax.div(n, jnp.array(groups, n.dtype))
  rows = pl.ds(i * bq, bq)
  load_tiles([(q_ref.at[b, n, rows], q_smem), (live_ref.at[b, i], live_smem)], barrier)
  q_pos, q_seg = plgpu.load(qp_ref.at[b, rows], layout=ROWS), plgpu.load(qs_ref.at[b, rows], layout=ROWS)
  init = (plgpu.layout_cast(jnp.zeros((bq, h), F32), plgpu.Layout.WGMMA),
          plgpu.layout_cast(jnp.full((bq,), MASK_VALUE, F32), ROWS),
          plgpu.layout_cast(jnp.zeros((bq,), F32), ROWS))
  pipeline = plgpu.emit_pipeline(
      _live_only(functools.partial(_kv_step, q_smem, p_smem, q_pos, q_seg, cfg), live_smem),
      grid=(k_ref.shape[2] // bk,),
      in_specs=[_tile(bk, h, q_ref.dtype)] * 2 + [_tokens(bk)] * 2, max_concurrent_steps=2, init_carry=init)
  acc, m, l = pipeline(k_ref.at[b, kv_head], v_ref.at[b, kv_head], kp_ref.at[b], ks_ref.at[b])
  has = l > 0
  safe = jnp.where(has, l, 1.0)
  q_smem[...] = (acc / full(safe, acc.shape, 0)).astype(q_smem.dtype)  # the output reuses Q's buffer
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
  live = _live_rows(block_liveness(q_pos, q_seg, kv_pos, kv_seg, cfg))  # [B, nq, nk]
  kernel = plgpu.kernel(
      functools.partial(_kernel, cfg=cfg, groups=n // k.shape[1]),
      out_type=(jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, n, tp), F32)),
      scratch_types=(plgpu.SMEM((cfg.block_q, h), q.dtype, transforms=smem_transforms(q.dtype, h)),
                     plgpu.SMEM((cfg.block_q, cfg.block_k), q.dtype, transforms=smem_transforms(q.dtype, cfg.block_k)),
                     plgpu.SMEM((cfg.block_q,), F32), plgpu.SMEM((live.shape[2],), jnp.int32),
                     plgpu.Barrier(num_barriers=2)),
      grid=(n, tp // cfg.block_q, b), grid_names=("heads", "q_seq", "batch"),
      compiler_params=plgpu.CompilerParams(approx_math=False),
      interpret=plgpu.InterpretGPUParams() if cfg.interpret else None)
  return kernel(q, k, v, q_pos, q_seg, kv_pos, kv_seg, live)


def _dq_step(q_smem, do_smem, ds_smem, rows, cfg: FlashConfig, _, k_smem, v_smem, kp_smem, ks_smem, dq):
  """dQ += dS K for one key tile; S = Q K^T and dP = dO V^T on the tensor cores."""
  q_pos, q_seg, lse, delta = rows
  shape = (q_smem.shape[0], k_smem.shape[0])
  s, tanh = scores(mm(q_smem, k_smem.T, shape), cfg)
  ok = visible(q_pos, q_seg, plgpu.load(kp_smem, layout=COLS), plgpu.load(ks_smem, layout=COLS), shape, 0, cfg)
  _, ds = score_grads(s, tanh, mm(do_smem, v_smem.T, shape), full(lse, shape, 0), full(delta, shape, 0), ok,
                      scale=cfg.scale)
  stage(ds_smem, ds)
  return dq + mm(ds_smem, k_smem, dq.shape)


def _dkv_step(k_smem, v_smem, t_smems, kv_rows, cfg: FlashConfig, _, q_smem, do_smem, lse_smem, delta_smem, qp_smem,
              qs_smem, carry):
  """dV += P^T dO and dK += dS^T Q for one query tile, computed transposed (keys on the wgmma rows)."""
  dk, dv = carry
  p_smem, ds_smem = t_smems
  shape = (k_smem.shape[0], q_smem.shape[0])
  s_t, tanh = scores(mm(k_smem, q_smem.T, shape), cfg)
  cols = [plgpu.load(x, layout=COLS) for x in (qp_smem, qs_smem, lse_smem, delta_smem)]
  ok = visible(cols[0], cols[1], kv_rows[0], kv_rows[1], shape, 1, cfg)
  p_t, ds_t = score_grads(s_t, tanh, mm(v_smem, do_smem.T, shape), full(cols[2], shape, 1),
                          full(cols[3], shape, 1), ok, scale=cfg.scale)
  stage(p_smem, p_t)
  stage(ds_smem, ds_t)
  return dk + mm(ds_smem, q_smem, dk.shape), dv + mm(p_smem, do_smem, dv.shape)


def _dq_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qp_ref, qs_ref, kp_ref, ks_ref, live_ref, _, dq_ref,
               q_smem, do_smem, ds_smem, live_smem, barrier, *, cfg: FlashConfig, groups: int):
  b, n, i = lax.axis_index("batch"), lax.axis_index("heads"), lax.axis_index("q_seq")
  bq, h = q_smem.shape
  rows = pl.ds(i * bq, bq)
  kv_head = lax.div(n, jnp.array(groups, n.dtype))
  load_tiles([(q_ref.at[b, n, rows], q_smem), (do_ref.at[b, n, rows], do_smem), (live_ref.at[b, i], live_smem)],
             barrier)
  stats = tuple(plgpu.load(r.at[b, rows], layout=ROWS) for r in (qp_ref, qs_ref)) + tuple(
      plgpu.load(r.at[b, n, rows], layout=ROWS) for r in (lse_ref, delta_ref))
  pipeline = plgpu.emit_pipeline(
      _live_only(functools.partial(_dq_step, q_smem, do_smem, ds_smem, stats, cfg), live_smem),
      grid=(k_ref.shape[2] // cfg.block_k,),
      in_specs=[_tile(cfg.block_k, h, q_ref.dtype)] * 2 + [_tokens(cfg.block_k)] * 2, max_concurrent_steps=2,
      init_carry=plgpu.layout_cast(jnp.zeros((bq, h), F32), plgpu.Layout.WGMMA))
  dq = pipeline(k_ref.at[b, kv_head], v_ref.at[b, kv_head], kp_ref.at[b], ks_ref.at[b])
  q_smem[...] = dq.astype(q_smem.dtype)
  store_tiles([(q_smem, dq_ref.at[b, n, rows])])


def _dkv_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qp_ref, qs_ref, kp_ref, ks_ref, _, live_ref, dk_ref,
                dv_ref, k_smem, v_smem, p_smem, ds_smem, live_smem, barrier, *, cfg: FlashConfig, groups: int):
  b, n, j = lax.axis_index("batch"), lax.axis_index("heads"), lax.axis_index("kv_seq")
  bk, h = k_smem.shape
  keys = pl.ds(j * bk, bk)
  kv_head = lax.div(n, jnp.array(groups, n.dtype))
  load_tiles([(k_ref.at[b, kv_head, keys], k_smem), (v_ref.at[b, kv_head, keys], v_smem),
              (live_ref.at[b, j], live_smem)], barrier)
  kv_rows = tuple(plgpu.load(r.at[b, keys], layout=ROWS) for r in (kp_ref, ks_ref))
  zeros = plgpu.layout_cast(jnp.zeros((bk, h), F32), plgpu.Layout.WGMMA)
  bq = cfg.block_q
  pipeline = plgpu.emit_pipeline(
      _live_only(functools.partial(_dkv_step, k_smem, v_smem, (p_smem, ds_smem), kv_rows, cfg), live_smem),
      grid=(q_ref.shape[2] // bq,), max_concurrent_steps=2, init_carry=(zeros, zeros),
      in_specs=[_tile(bq, h, q_ref.dtype)] * 2 + [_tokens(bq)] * 4)
  dk, dv = pipeline(q_ref.at[b, n], do_ref.at[b, n], lse_ref.at[b, n], delta_ref.at[b, n], qp_ref.at[b],
                    qs_ref.at[b])
  k_smem[...], v_smem[...] = dk.astype(k_smem.dtype), dv.astype(v_smem.dtype)
  store_tiles([(k_smem, dk_ref.at[b, n, keys]), (v_smem, dv_ref.at[b, n, keys])])


def _tile(rows: int, h: int, dtype):
  return plgpu.BlockSpec((rows, h), lambda j: (j, 0), transforms=smem_transforms(dtype, h))


def _tokens(rows: int):
  return plgpu.BlockSpec((rows,), lambda j: (j,))


@functools.partial(jax.jit, static_argnames=("cfg",))
def flash_backward(q, k, v, out, lse, d_out, q_pos, q_seg, kv_pos, kv_seg, *, cfg: FlashConfig):
  """dQ kernel (grid heads, query tiles, batch) then dK/dV kernel (grid heads, key tiles, batch), per query head.

  Args:
    q, out, d_out: [B, N, Tp, H] f16/bf16.  k, v: [B, K, Sp, H].  lse: [B, N, Tp] fp32.  q_pos, q_seg: [B, Tp];
      kv_pos, kv_seg: [B, Sp] int32.
  Returns:
    (dq [B, N, Tp, H], dk, dv [B, K, Sp, H]) in the input dtypes (per-head dK/dV summed over the group in fp32).
  """
  b, n, tp, h = q.shape
  kv_heads, sp = k.shape[1], k.shape[2]
  groups, bq, bk = n // kv_heads, cfg.block_q, cfg.block_k
  delta = row_delta(out, d_out)
  live = block_liveness(q_pos, q_seg, kv_pos, kv_seg, cfg)  # [B, nq, nk]
  args = (q, k, v, d_out, lse, delta, q_pos, q_seg, kv_pos, kv_seg, _live_rows(live),
          _live_rows(jnp.swapaxes(live, 1, 2)))
  smem = lambda rows, cols: plgpu.SMEM((rows, cols), q.dtype, transforms=smem_transforms(q.dtype, cols))  # noqa: E731
  interpret = plgpu.InterpretGPUParams() if cfg.interpret else None
  dq = plgpu.kernel(
      functools.partial(_dq_kernel, cfg=cfg, groups=groups), out_type=jax.ShapeDtypeStruct(q.shape, q.dtype),
      scratch_types=(smem(bq, h), smem(bq, h), smem(bq, bk), plgpu.SMEM((args[10].shape[2],), jnp.int32),
                     plgpu.Barrier(num_barriers=3)),
      grid=(n, tp // bq, b), grid_names=("heads", "q_seq", "batch"), interpret=interpret)(*args)
  per_head = jax.ShapeDtypeStruct((b, n, sp, h), k.dtype)
  dk, dv = plgpu.kernel(
      functools.partial(_dkv_kernel, cfg=cfg, groups=groups), out_type=(per_head, per_head),
      scratch_types=(smem(bk, h), smem(bk, h), smem(bk, bq), smem(bk, bq), plgpu.SMEM((args[11].shape[2],), jnp.int32),
                     plgpu.Barrier(num_barriers=3)),
      grid=(n, sp // bk, b), grid_names=("heads", "kv_seq", "batch"), interpret=interpret)(*args)
  return dq, fold_groups(dk.astype(F32), kv_heads, k.dtype), fold_groups(dv.astype(F32), kv_heads, v.dtype)
