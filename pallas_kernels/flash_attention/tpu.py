"""Flash attention, TPU target (Mosaic TPU): grid over (batch, head, query block, key block), VMEM accumulators.

The innermost grid axis walks key blocks sequentially ("arbitrary"), carrying the online-softmax state in VMEM
scratch. Splash-style block mask info (`layout.block_liveness`, scalar-prefetched into SMEM) skips dead tiles and
points their index maps at the last live block, so a dead step issues no new DMA. Blocks respect the (8, 128)
tiling: per-token data is laid out [B, Tp, 1] for queries (sublanes) and [B, 1, Sp] for keys (lanes).
The backward pass is two kernels: dQ (key blocks innermost) and dK/dV per query head (query blocks innermost).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from pallas_kernels.flash_attention.layout import FlashConfig, block_liveness, fetch_order, fold_groups, row_delta
from pallas_kernels.tile_math import (F32, MASK_VALUE, dot_nn, dot_tn, softmax_finish, softmax_update, tile_grads,
                                      tile_scores, tile_visible)


def _interpret(cfg: FlashConfig):
  return pltpu.InterpretParams() if cfg.interpret else False


def _params():
  return pltpu.CompilerParams(dimension_semantics=("parallel", "parallel", "parallel", "arbitrary"))


class _Specs:
  """Index maps over grid (b, n, outer, inner) with scalar-prefetched (live, fetch) [B, outer, inner] tables.

  `q_major`: the outer axis walks query blocks (forward, dQ); otherwise key blocks (dK/dV).
  """

  def __init__(self, groups: int, q_major: bool):
    self.groups, self.q_major = groups, q_major

  def _blocks(self, o, i, fetch, b):
    """(query block, key block) read at step (o, i); the inner one follows the fetch order."""
    inner = fetch[b, o, i]
    return (o, inner) if self.q_major else (inner, o)

  def q(self, block, h):
    return pl.BlockSpec((None, None, block, h),
                        lambda b, n, o, i, live, fetch: (b, n, self._blocks(o, i, fetch, b)[0], 0))

  def kv(self, block, h, per_q_head=False):
    div = 1 if per_q_head else self.groups
    return pl.BlockSpec((None, None, block, h),
                        lambda b, n, o, i, live, fetch: (b, lax.div(n, div), self._blocks(o, i, fetch, b)[1], 0))

  def q_tokens(self, block):
    return pl.BlockSpec((None, block, 1), lambda b, n, o, i, live, fetch: (b, self._blocks(o, i, fetch, b)[0], 0))

  def q_stats(self, block):
    return pl.BlockSpec((None, None, block, 1),
                        lambda b, n, o, i, live, fetch: (b, n, self._blocks(o, i, fetch, b)[0], 0))

  def kv_tokens(self, block):
    return pl.BlockSpec((None, 1, block), lambda b, n, o, i, live, fetch: (b, 0, self._blocks(o, i, fetch, b)[1]))


def _tables(q_pos, q_seg, kv_pos, kv_seg, cfg, q_major: bool):
  live = block_liveness(q_pos, q_seg, kv_pos, kv_seg, cfg)  # [B, nq, nk]
  if not q_major:
    live = jnp.swapaxes(live, 1, 2)
  return live, fetch_order(live)


def _fwd_kernel(live_ref, fetch_ref, q_ref, k_ref, v_ref, qp_ref, qs_ref, kp_ref, ks_ref, o_ref, lse_ref,
                m_ref, l_ref, acc_ref, *, cfg: FlashConfig):
  b, o, i = pl.program_id(0), pl.program_id(2), pl.program_id(3)

  @pl.when(i == 0)
  def _init():
    m_ref[...] = jnp.full(m_ref.shape, MASK_VALUE, F32)
    l_ref[...] = jnp.zeros(l_ref.shape, F32)
    acc_ref[...] = jnp.zeros(acc_ref.shape, F32)

  @pl.when(live_ref[b, o, i] != 0)
  def _update():
    ok = tile_visible(qp_ref[...], qs_ref[...], kp_ref[...], ks_ref[...], **cfg.mask)
    s, _ = tile_scores(q_ref[...], k_ref[...], scale=cfg.scale, softcap=cfg.softcap)
    m_ref[...], l_ref[...], acc_ref[...] = softmax_update(s, ok, v_ref[...], m_ref[...], l_ref[...], acc_ref[...])

  @pl.when(i == pl.num_programs(3) - 1)
  def _finish():
    out, lse = softmax_finish(m_ref[...], l_ref[...], acc_ref[...])
    o_ref[...] = out.astype(o_ref.dtype)
    lse_ref[...] = lse


def _tokens(q_pos, q_seg, kv_pos, kv_seg):
  return q_pos[:, :, None], q_seg[:, :, None], kv_pos[:, None, :], kv_seg[:, None, :]


@functools.partial(jax.jit, static_argnames=("cfg",))
def flash_forward(q, k, v, q_pos, q_seg, kv_pos, kv_seg, *, cfg: FlashConfig):
  """Forward kernel, grid (b, n, query block, key block) over the padded heads-major layout.

  Args:
    q: [B, N, Tp, H] queries.  k, v: [B, K, Sp, H] keys/values.  q_pos, q_seg: [B, Tp] and kv_pos, kv_seg:
      [B, Sp] int32 positions and segment ids (padding carries the PAD segments).
  Returns:
    (out [B, N, Tp, H] in q's dtype, lse [B, N, Tp] fp32).
  """
  b, n, tp, h = q.shape
  bq, bk, sp = cfg.block_q, cfg.block_k, k.shape[2]
  live, fetch = _tables(q_pos, q_seg, kv_pos, kv_seg, cfg, q_major=True)
  sp_ = _Specs(n // k.shape[1], q_major=True)
  grid_spec = pltpu.PrefetchScalarGridSpec(
      num_scalar_prefetch=2, grid=(b, n, tp // bq, sp // bk),
      in_specs=[sp_.q(bq, h), sp_.kv(bk, h), sp_.kv(bk, h), sp_.q_tokens(bq), sp_.q_tokens(bq), sp_.kv_tokens(bk),
                sp_.kv_tokens(bk)],
      out_specs=[sp_.q(bq, h), sp_.q_stats(bq)],
      scratch_shapes=[pltpu.VMEM((bq, 1), F32), pltpu.VMEM((bq, 1), F32), pltpu.VMEM((bq, h), F32)])
  out, lse = pl.pallas_call(
      functools.partial(_fwd_kernel, cfg=cfg), grid_spec=grid_spec,
      out_shape=[jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, n, tp, 1), F32)],
      compiler_params=_params(), interpret=_interpret(cfg), name="lcjax_flash_fwd_tpu",
  )(live, fetch, q, k, v, *_tokens(q_pos, q_seg, kv_pos, kv_seg))
  return out, lse[..., 0]


def _dq_kernel(live_ref, fetch_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qp_ref, qs_ref, kp_ref, ks_ref,
               dq_ref, acc_ref, *, cfg: FlashConfig):
  b, o, i = pl.program_id(0), pl.program_id(2), pl.program_id(3)

  @pl.when(i == 0)
  def _init():
    acc_ref[...] = jnp.zeros(acc_ref.shape, F32)

  @pl.when(live_ref[b, o, i] != 0)
  def _update():
    ok = tile_visible(qp_ref[...], qs_ref[...], kp_ref[...], ks_ref[...], **cfg.mask)
    k = k_ref[...]
    _, ds = tile_grads(q_ref[...], k, v_ref[...], do_ref[...], lse_ref[...], delta_ref[...], ok, scale=cfg.scale,
                       softcap=cfg.softcap)
    acc_ref[...] += dot_nn(ds.astype(k.dtype), k)

  @pl.when(i == pl.num_programs(3) - 1)
  def _finish():
    dq_ref[...] = acc_ref[...].astype(dq_ref.dtype)


def _dkv_kernel(live_ref, fetch_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qp_ref, qs_ref, kp_ref,
                ks_ref, dk_ref, dv_ref, dk_acc, dv_acc, *, cfg: FlashConfig):
  b, o, i = pl.program_id(0), pl.program_id(2), pl.program_id(3)

  @pl.when(i == 0)
  def _init():
    dk_acc[...] = jnp.zeros(dk_acc.shape, F32)
    dv_acc[...] = jnp.zeros(dv_acc.shape, F32)

  @pl.when(live_ref[b, o, i] != 0)
  def _update():
    ok = tile_visible(qp_ref[...], qs_ref[...], kp_ref[...], ks_ref[...], **cfg.mask)
    q, d_out = q_ref[...], do_ref[...]
    p, ds = tile_grads(q, k_ref[...], v_ref[...], d_out, lse_ref[...], delta_ref[...], ok, scale=cfg.scale,
                       softcap=cfg.softcap)
    dk_acc[...] += dot_tn(ds.astype(q.dtype), q)
    dv_acc[...] += dot_tn(p.astype(d_out.dtype), d_out)

  @pl.when(i == pl.num_programs(3) - 1)
  def _finish():
    dk_ref[...], dv_ref[...] = dk_acc[...], dv_acc[...]


@functools.partial(jax.jit, static_argnames=("cfg",))
def flash_backward(q, k, v, out, lse, d_out, q_pos, q_seg, kv_pos, kv_seg, *, cfg: FlashConfig):
  """dQ kernel (grid b, n, query block, key block) then dK/dV kernel (grid b, n, key block, query block).

  Args:
    q, out, d_out: [B, N, Tp, H] queries, outputs, output cotangents.  k, v: [B, K, Sp, H].
    lse: [B, N, Tp] forward log-sum-exp.  q_pos, q_seg: [B, Tp].  kv_pos, kv_seg: [B, Sp].
  Returns:
    (dq [B, N, Tp, H], dk, dv [B, K, Sp, H]) in the input dtypes.
  """
  b, n, tp, h = q.shape
  kv_heads, sp, bq, bk = k.shape[1], k.shape[2], cfg.block_q, cfg.block_k
  groups = n // kv_heads
  delta = row_delta(out, d_out, keepdims=True)
  args = (q, k, v, d_out, lse[..., None], delta, *_tokens(q_pos, q_seg, kv_pos, kv_seg))
  qm = _Specs(groups, q_major=True)
  dq = pl.pallas_call(
      functools.partial(_dq_kernel, cfg=cfg),
      grid_spec=pltpu.PrefetchScalarGridSpec(
          num_scalar_prefetch=2, grid=(b, n, tp // bq, sp // bk),
          in_specs=[qm.q(bq, h), qm.kv(bk, h), qm.kv(bk, h), qm.q(bq, h), qm.q_stats(bq), qm.q_stats(bq),
                    qm.q_tokens(bq), qm.q_tokens(bq), qm.kv_tokens(bk), qm.kv_tokens(bk)],
          out_specs=qm.q(bq, h), scratch_shapes=[pltpu.VMEM((bq, h), F32)]),
      out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype), compiler_params=_params(), interpret=_interpret(cfg),
      name="lcjax_flash_dq_tpu",
  )(*_tables(q_pos, q_seg, kv_pos, kv_seg, cfg, q_major=True), *args)
  km = _Specs(groups, q_major=False)
  per_head = jax.ShapeDtypeStruct((b, n, sp, h), F32)
  dk, dv = pl.pallas_call(
      functools.partial(_dkv_kernel, cfg=cfg),
      grid_spec=pltpu.PrefetchScalarGridSpec(
          num_scalar_prefetch=2, grid=(b, n, sp // bk, tp // bq),
          in_specs=[km.q(bq, h), km.kv(bk, h), km.kv(bk, h), km.q(bq, h), km.q_stats(bq), km.q_stats(bq),
                    km.q_tokens(bq), km.q_tokens(bq), km.kv_tokens(bk), km.kv_tokens(bk)],
          out_specs=[km.kv(bk, h, per_q_head=True), km.kv(bk, h, per_q_head=True)],
          scratch_shapes=[pltpu.VMEM((bk, h), F32), pltpu.VMEM((bk, h), F32)]),
      out_shape=[per_head, per_head], compiler_params=_params(), interpret=_interpret(cfg),
      name="lcjax_flash_dkv_tpu",
  )(*_tables(q_pos, q_seg, kv_pos, kv_seg, cfg, q_major=False), *args)
  return dq, fold_groups(dk, kv_heads, k.dtype), fold_groups(dv, kv_heads, v.dtype)
