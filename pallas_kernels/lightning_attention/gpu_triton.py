"""Lightning attention, Triton target (`pl.pallas_call` lowered through Triton): one program per (batch, head).

Like OpenNLPLab's Lightning-2 kernel, a program walks its row's blocks in order (`fori_loop`) with the fp32 state
[H, H] in registers: intra-block masked product plus inter-block product through the state. The backward pass is
two kernels: dQ walks the blocks forwards recomputing the state; dK/dV walk them backwards carrying its cotangent.
Block C and head dim H must be powers of two >= 16 (Triton tiles). Triton in Pallas is deprecated since jax 0.11.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from pallas_kernels.lightning_attention.block_math import next_state, tile_decays, tile_dkv, tile_dq, tile_forward
from pallas_kernels.lightning_attention.layout import LightningConfig
from pallas_kernels.tile_math import F32


def check_tiles(block: int, head_dim: int) -> None:
  """Raises ValueError unless C and H are powers of two >= 16."""
  for name, x in (("block_size", block), ("head dim", head_dim)):
    if x < 16 or x & (x - 1):
      raise ValueError(f"the triton lightning kernel needs {name} a power of two >= 16, got {x}")


def _row(length, h=None):
  """BlockSpec over grid (b, n): all `length` tokens of row b, head n ([Tp, H]) or of row b ([Tp] for runs)."""
  if h is None:
    return pl.BlockSpec((None, length), lambda b, n: (b, 0))
  return pl.BlockSpec((None, None, length, h), lambda b, n: (b, n, 0, 0))


def _rate():
  return pl.BlockSpec((1,), lambda b, n: (n,))


def _block_decays(rate, runs_ref, u, cfg: LightningConfig):
  start = u * cfg.block
  run = runs_ref[pl.ds(start, cfg.block)]
  m = jnp.minimum(cfg.block, cfg.length - start)
  prev = runs_ref[pl.ds(jnp.maximum(start - 1, 0), 1)]
  last = runs_ref[pl.ds(start + m - 1, 1)]
  return tile_decays(rate, run[:, None], run[None, :], prev[None, :], last[None, :], m)


def _fwd_kernel(rate_ref, q_ref, k_ref, v_ref, runs_ref, s0_ref, o_ref, s_ref, *, cfg: LightningConfig):
  rate = rate_ref[0]

  def body(u, state):
    sl = pl.ds(u * cfg.block, cfg.block)
    o, state = tile_forward(q_ref[sl, :], k_ref[sl, :], v_ref[sl, :], state, _block_decays(rate, runs_ref, u, cfg))
    o_ref[sl, :] = o.astype(o_ref.dtype)
    return state

  s_ref[...] = lax.fori_loop(0, cfg.num_blocks, body, s0_ref[...])


def _dq_kernel(rate_ref, q_ref, k_ref, v_ref, runs_ref, s0_ref, do_ref, dq_ref, *, cfg: LightningConfig):
  rate = rate_ref[0]

  def body(u, state):
    sl = pl.ds(u * cfg.block, cfg.block)
    d = _block_decays(rate, runs_ref, u, cfg)
    k, v = k_ref[sl, :], v_ref[sl, :]
    dq_ref[sl, :] = tile_dq(k, v, do_ref[sl, :], state, d)
    return next_state(k, v, state, d)

  lax.fori_loop(0, cfg.num_blocks, body, s0_ref[...])


def _dkv_kernel(rate_ref, q_ref, k_ref, v_ref, runs_ref, ds_ref, do_ref, dk_ref, dv_ref, ds0_ref, *,
                cfg: LightningConfig):
  rate = rate_ref[0]

  def body(i, d_state):
    u = cfg.num_blocks - 1 - i
    sl = pl.ds(u * cfg.block, cfg.block)
    dk, dv, d_state = tile_dkv(q_ref[sl, :], k_ref[sl, :], v_ref[sl, :], do_ref[sl, :], d_state,
                               _block_decays(rate, runs_ref, u, cfg))
    dk_ref[sl, :], dv_ref[sl, :] = dk, dv
    return d_state

  ds0_ref[...] = lax.fori_loop(0, cfg.num_blocks, body, ds_ref[...])


def _call(kernel, name, cfg, h, ins, outs, *args):
  tp = cfg.padded
  spec = {"tok": _row(tp, h), "run": _row(tp), "state": _row(h, h), "rate": _rate()}
  return pl.pallas_call(
      functools.partial(kernel, cfg=cfg), grid=args[1].shape[:2], in_specs=[spec[s] for s in ins],
      out_specs=[spec[s] for s, _ in outs], out_shape=[o for _, o in outs],
      compiler_params=pltriton.CompilerParams(num_warps=4 if h <= 64 else 8, num_stages=1),
      interpret=cfg.interpret, name=name)(*args)


@functools.partial(jax.jit, static_argnames=("cfg",))
def lightning_forward(q, k, v, rates, state0, runs, *, cfg: LightningConfig):
  """Forward kernel. q, k, v [B, N, Tp, H]; rates [N]; state0 [B, N, H, H]; runs [B, Tp] -> (o, final state)."""
  h = q.shape[-1]
  outs = [("tok", jax.ShapeDtypeStruct(q.shape, q.dtype)), ("state", jax.ShapeDtypeStruct(state0.shape, F32))]
  return _call(_fwd_kernel, "lcjax_lightning_fwd_triton", cfg, h, ("rate", "tok", "tok", "tok", "run", "state"),
               outs, rates, q, k, v, runs, state0)


@functools.partial(jax.jit, static_argnames=("cfg",))
def lightning_backward(q, k, v, rates, state0, runs, d_out, d_state, *, cfg: LightningConfig):
  """dQ kernel then dK/dV kernel; returns (dq, dk, dv [B, N, Tp, H] fp32, d_state0 [B, N, H, H] fp32)."""
  h = q.shape[-1]
  grad = jax.ShapeDtypeStruct(q.shape, F32)
  (dq,) = _call(_dq_kernel, "lcjax_lightning_dq_triton", cfg, h,
                ("rate", "tok", "tok", "tok", "run", "state", "tok"), [("tok", grad)],
                rates, q, k, v, runs, state0, d_out)
  dk, dv, d_state0 = _call(_dkv_kernel, "lcjax_lightning_dkv_triton", cfg, h,
                           ("rate", "tok", "tok", "tok", "run", "state", "tok"),
                           [("tok", grad), ("tok", grad), ("state", jax.ShapeDtypeStruct(state0.shape, F32))],
                           rates, q, k, v, runs, d_state, d_out)
  return dq, dk, dv, d_state0
