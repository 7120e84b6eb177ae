"""Flash attention, Triton target (`pl.pallas_call` lowered through Triton): pre-Hopper NVIDIA GPUs.

Pallas-on-Triton is deprecated since jax 0.11 (Mosaic GPU replaces it); this file is self-contained so it can be
dropped. One program per (batch, query head, query block); the key loop runs inside the program (`fori_loop`),
skipping tiles with no visible key (`lax.cond`). The backward pass is two kernels (FlashAttention-2): dQ per query
block, dK/dV per key block and query head (summed over the GQA group outside).
Tiles are powers of two (a Triton rule); T and S are padded to the block sizes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from pallas_kernels.flash_attention.layout import FlashConfig, fold_groups, row_delta
from pallas_kernels.tile_math import (F32, dot_nn, dot_tn, softmax_finish, softmax_init, softmax_update,
                                      tile_grads, tile_scores, tile_visible)


def _any(ok):
  return jnp.max(ok.astype(jnp.int32)) > 0


def _params(head_dim: int):
  return pltriton.CompilerParams(num_warps=4 if head_dim <= 64 else 8, num_stages=2)


def _tile(block, head_dim=None, groups=1):
  """BlockSpec over grid (b, n, i) for tile i of head n // groups: [block, H] or, for tokens, [block]."""
  if head_dim is None:
    return pl.BlockSpec((None, block), lambda b, n, i: (b, i))
  return pl.BlockSpec((None, None, block, head_dim), lambda b, n, i: (b, n // groups, i, 0))


def _whole(length, head_dim=None, groups=1):
  """BlockSpec over grid (b, n, i) for all `length` rows of head n // groups."""
  if head_dim is None:
    return pl.BlockSpec((None, length), lambda b, n, i: (b, 0))
  return pl.BlockSpec((None, None, length, head_dim), lambda b, n, i: (b, n // groups, 0, 0))


def _row_stats(block, whole=False):
  """BlockSpec of per-row statistics [B, N, Tp] (lse, delta)."""
  if whole:
    return pl.BlockSpec((None, None, block), lambda b, n, i: (b, n, 0))
  return pl.BlockSpec((None, None, block), lambda b, n, i: (b, n, i))


def _fwd_kernel(q_ref, k_ref, v_ref, qp_ref, qs_ref, kp_ref, ks_ref, o_ref, lse_ref, *, cfg: FlashConfig):
  q = q_ref[...]
  qp, qs = qp_ref[...][:, None], qs_ref[...][:, None]
  bk = cfg.block_k

  def body(j, carry):
    sl = pl.ds(j * bk, bk)
    ok = tile_visible(qp, qs, kp_ref[sl][None, :], ks_ref[sl][None, :], **cfg.mask)

    def update(carry):
      s, _ = tile_scores(q, k_ref[sl, :], scale=cfg.scale, softcap=cfg.softcap)
      return softmax_update(s, ok, v_ref[sl, :], *carry)

    return lax.cond(_any(ok), update, lambda c: c, carry)

  carry = lax.fori_loop(0, k_ref.shape[0] // bk, body, softmax_init(*q.shape))
  out, lse = softmax_finish(*carry)
  o_ref[...] = out.astype(o_ref.dtype)
  lse_ref[...] = lse[:, 0]


@functools.partial(jax.jit, static_argnames=("cfg",))
def flash_forward(q, k, v, q_pos, q_seg, kv_pos, kv_seg, *, cfg: FlashConfig):
  """Forward kernel on the padded heads-major layout.

  Args:
    q: [B, N, Tp, H].  k, v: [B, K, Sp, H].  q_pos, q_seg: [B, Tp].  kv_pos, kv_seg: [B, Sp].
  Returns:
    (out [B, N, Tp, H] in q's dtype, lse [B, N, Tp] fp32).
  """
  b, n, tp, h = q.shape
  sp, groups, bq = k.shape[2], n // k.shape[1], cfg.block_q
  return pl.pallas_call(
      functools.partial(_fwd_kernel, cfg=cfg), grid=(b, n, tp // bq),
      in_specs=[_tile(bq, h), _whole(sp, h, groups), _whole(sp, h, groups), _tile(bq), _tile(bq), _whole(sp),
                _whole(sp)],
      out_specs=[_tile(bq, h), _row_stats(bq)],
      out_shape=[jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, n, tp), F32)],
      compiler_params=_params(h), interpret=cfg.interpret, name="lcjax_flash_fwd_triton",
  )(q, k, v, q_pos, q_seg, kv_pos, kv_seg)


def _dq_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qp_ref, qs_ref, kp_ref, ks_ref, dq_ref, *,
               cfg: FlashConfig):
  q, d_out = q_ref[...], do_ref[...]
  lse, delta = lse_ref[...][:, None], delta_ref[...][:, None]
  qp, qs = qp_ref[...][:, None], qs_ref[...][:, None]
  bk = cfg.block_k

  def body(j, dq):
    sl = pl.ds(j * bk, bk)
    ok = tile_visible(qp, qs, kp_ref[sl][None, :], ks_ref[sl][None, :], **cfg.mask)

    def update(dq):
      k = k_ref[sl, :]
      _, ds = tile_grads(q, k, v_ref[sl, :], d_out, lse, delta, ok, scale=cfg.scale, softcap=cfg.softcap)
      return dq + dot_nn(ds.astype(k.dtype), k)

    return lax.cond(_any(ok), update, lambda c: c, dq)

  dq = lax.fori_loop(0, k_ref.shape[0] // bk, body, jnp.zeros(q.shape, F32))
  dq_ref[...] = dq.astype(dq_ref.dtype)


def _dkv_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qp_ref, qs_ref, kp_ref, ks_ref, dk_ref, dv_ref,
                *, cfg: FlashConfig):
  k, v = k_ref[...], v_ref[...]
  kp, ks = kp_ref[...][None, :], ks_ref[...][None, :]
  bq = cfg.block_q

  def body(i, carry):
    sl = pl.ds(i * bq, bq)
    ok = tile_visible(qp_ref[sl][:, None], qs_ref[sl][:, None], kp, ks, **cfg.mask)

    def update(carry):
      dk, dv = carry
      q, d_out = q_ref[sl, :], do_ref[sl, :]
      p, ds = tile_grads(q, k, v, d_out, lse_ref[sl][:, None], delta_ref[sl][:, None], ok, scale=cfg.scale,
                         softcap=cfg.softcap)
      return dk + dot_tn(ds.astype(q.dtype), q), dv + dot_tn(p.astype(d_out.dtype), d_out)

    return lax.cond(_any(ok), update, lambda c: c, carry)

  zeros = jnp.zeros(k.shape, F32)
  dk, dv = lax.fori_loop(0, q_ref.shape[0] // bq, body, (zeros, zeros))
  dk_ref[...], dv_ref[...] = dk, dv


@functools.partial(jax.jit, static_argnames=("cfg",))
def flash_backward(q, k, v, out, lse, d_out, q_pos, q_seg, kv_pos, kv_seg, *, cfg: FlashConfig):
  """Backward kernels (dQ; dK/dV) on the padded heads-major layout.

  Args:
    q, out, d_out: [B, N, Tp, H].  k, v: [B, K, Sp, H].  lse: [B, N, Tp].  positions/segments as `flash_forward`.
  Returns:
    (dq [B, N, Tp, H], dk, dv [B, K, Sp, H]) in the input dtypes.
  """
  b, n, tp, h = q.shape
  kv_heads, sp = k.shape[1], k.shape[2]
  groups, bq, bk = n // kv_heads, cfg.block_q, cfg.block_k
  delta = row_delta(out, d_out)
  args = (q, k, v, d_out, lse, delta, q_pos, q_seg, kv_pos, kv_seg)
  dq = pl.pallas_call(
      functools.partial(_dq_kernel, cfg=cfg), grid=(b, n, tp // bq),
      in_specs=[_tile(bq, h), _whole(sp, h, groups), _whole(sp, h, groups), _tile(bq, h), _row_stats(bq),
                _row_stats(bq), _tile(bq), _tile(bq), _whole(sp), _whole(sp)],
      out_specs=_tile(bq, h), out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
      compiler_params=_params(h), interpret=cfg.interpret, name="lcjax_flash_dq_triton",
  )(*args)
  per_head = jax.ShapeDtypeStruct((b, n, sp, h), F32)
  dk, dv = pl.pallas_call(
      functools.partial(_dkv_kernel, cfg=cfg), grid=(b, n, sp // bk),
      in_specs=[_whole(tp, h), _tile(bk, h, groups), _tile(bk, h, groups), _whole(tp, h), _row_stats(tp, True),
                _row_stats(tp, True), _whole(tp), _whole(tp), _tile(bk), _tile(bk)],
      out_specs=[_tile(bk, h), _tile(bk, h)], out_shape=[per_head, per_head],
      compiler_params=_params(h), interpret=cfg.interpret, name="lcjax_flash_dkv_triton",
  )(*args)
  return dq, fold_groups(dk, kv_heads, k.dtype), fold_groups(dv, kv_heads, v.dtype)
