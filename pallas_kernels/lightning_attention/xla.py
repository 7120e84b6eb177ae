"""Lightning attention as an XLA scan over blocks (the "xla" target): the kernels' tile math, one block per step.

Forward and dQ scan blocks in order carrying the fp32 state S [H, H]; dK/dV scan them in reverse carrying its
cotangent (Lightning-2's split). Memory is O(T) for activations and O(1) blocks of state, like the kernels.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pallas_kernels.lightning_attention.block_math import next_state, tile_decays, tile_dkv, tile_dq, tile_forward
from pallas_kernels.lightning_attention.layout import LightningConfig, block_meta


def _blocks(x, c):
  """[Tp, ...] -> [U, C, ...]."""
  return x.reshape(x.shape[0] // c, c, *x.shape[1:])


def _per_row(fn):
  """Lifts fn(q, k, v, extra, state, rate, runs, prev, last, m) over heads (rate per head) then batch."""
  heads = jax.vmap(fn, in_axes=(0, 0, 0, 0, 0, 0, None, None, None, None))
  return jax.vmap(heads, in_axes=(0, 0, 0, 0, 0, None, 0, 0, 0, None))


def _decays(rate, run_blk, prev, last, m):
  return tile_decays(rate, run_blk[:, None], run_blk[None, :], prev, last, m)


def _scan(step, q, k, v, extra, state, rate, runs, prev, last, m, c, reverse=False):
  xs = (_blocks(q, c), _blocks(k, c), _blocks(v, c), _blocks(extra, c), _blocks(runs, c), prev, last, m)
  return jax.lax.scan(lambda s, x: step(rate, s, *x), state, xs, reverse=reverse)


def _fwd_row(q, k, v, _, state, rate, runs, prev, last, m, *, c):
  def step(rate, s, q, k, v, _, r, p, la, mm):
    o, s = tile_forward(q, k, v, s, _decays(rate, r, p, la, mm))
    return s, o.astype(q.dtype)

  state, o = _scan(step, q, k, v, q, state, rate, runs, prev, last, m, c)
  return o.reshape(q.shape), state


def _dq_row(q, k, v, d_out, state, rate, runs, prev, last, m, *, c):
  def step(rate, s, q, k, v, do, r, p, la, mm):
    d = _decays(rate, r, p, la, mm)
    return next_state(k, v, s, d), tile_dq(k, v, do, s, d)

  _, dq = _scan(step, q, k, v, d_out, state, rate, runs, prev, last, m, c)
  return dq.reshape(q.shape)


def _dkv_row(q, k, v, d_out, d_state, rate, runs, prev, last, m, *, c):
  def step(rate, ds, q, k, v, do, r, p, la, mm):
    dk, dv, ds = tile_dkv(q, k, v, do, ds, _decays(rate, r, p, la, mm))
    return ds, (dk, dv)

  d_state0, (dk, dv) = _scan(step, q, k, v, d_out, d_state, rate, runs, prev, last, m, c, reverse=True)
  return dk.reshape(k.shape), dv.reshape(v.shape), d_state0


@functools.partial(jax.jit, static_argnames=("cfg",))
def lightning_forward(q, k, v, rates, state0, runs, *, cfg: LightningConfig):
  """Forward on the padded heads-major layout.

  Args:
    q, k, v: [B, N, Tp, H].  rates: [N] fp32.  state0: [B, N, H, H] fp32.  runs: [B, Tp] int32.
  Returns:
    (o [B, N, Tp, H] in q's dtype, final state [B, N, H, H] fp32).
  """
  prev, last, m = block_meta(runs, cfg)
  fn = _per_row(functools.partial(_fwd_row, c=cfg.block))
  return fn(q, k, v, q, state0, rates, runs, prev, last, m)


@functools.partial(jax.jit, static_argnames=("cfg",))
def lightning_backward(q, k, v, rates, state0, runs, d_out, d_state, *, cfg: LightningConfig):
  """dQ (forward scan) and dK, dV, dS0 (reverse scan) on the padded heads-major layout.

  Args:
    as `lightning_forward`, plus d_out [B, N, Tp, H] and d_state [B, N, H, H] (cotangent of the final state).
  Returns:
    (dq, dk, dv [B, N, Tp, H] fp32, d_state0 [B, N, H, H] fp32).
  """
  prev, last, m = block_meta(runs, cfg)
  dq = _per_row(functools.partial(_dq_row, c=cfg.block))(q, k, v, d_out, state0, rates, runs, prev, last, m)
  dk, dv, d_state0 = _per_row(functools.partial(_dkv_row, c=cfg.block))(q, k, v, d_out, d_state, rates, runs,
                                                                          prev, last, m)
  return dq, dk, dv, d_state0
