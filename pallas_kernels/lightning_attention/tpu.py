"""Lightning attention, TPU target (Mosaic TPU): grid (batch, head, block) with the block axis sequential.

As in axlearn's SSD kernel, the innermost grid axis walks the blocks ("arbitrary") and carries the fp32 state
[H, H] in VMEM scratch; each step does the intra-block masked product and the inter-block product through the
state. The backward pass is two kernels: dQ walks blocks forwards recomputing the state, dK/dV walk them backwards
(index maps read block U-1-u) carrying its cotangent. Decay rates live in SMEM; run ids come twice, as a column
[B, Tp, 1] (sublanes) and a row [B, 1, Tp] (lanes), so the block C must be a multiple of 128 or the whole row.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from pallas_kernels.lightning_attention.block_math import next_state, tile_decays, tile_dkv, tile_dq, tile_forward
from pallas_kernels.lightning_attention.layout import LightningConfig, block_meta
from pallas_kernels.tile_math import F32


def check_tiles(block: int, head_dim: int) -> None:
  """Raises ValueError unless C is a multiple of 8 (sublanes); lowering also needs 128 | C or C = Tp."""
  if block < 8 or block % 8:
    raise ValueError(f"the tpu lightning kernel needs block_size a multiple of 8, got {block}")


class _Specs:
  """BlockSpecs over grid (b, n, u) with scalar-prefetched (run_prev, run_last) [B, U]; `reverse` reads U-1-u."""

  def __init__(self, cfg: LightningConfig, h: int, reverse: bool):
    self.c, self.h, self.nb, self.reverse = cfg.block, h, cfg.num_blocks, reverse

  def _u(self, u):
    return self.nb - 1 - u if self.reverse else u

  def tok(self):
    return pl.BlockSpec((None, None, self.c, self.h), lambda b, n, u, *_: (b, n, self._u(u), 0))

  def state(self):
    return pl.BlockSpec((None, None, self.h, self.h), lambda b, n, u, *_: (b, n, 0, 0))

  def run_col(self):
    return pl.BlockSpec((None, self.c, 1), lambda b, n, u, *_: (b, self._u(u), 0))

  def run_row(self):
    return pl.BlockSpec((None, 1, self.c), lambda b, n, u, *_: (b, 0, self._u(u)))

  @staticmethod
  def rate():
    return pl.BlockSpec(memory_space=pltpu.SMEM)


def _decays(prev_ref, last_ref, rate_ref, rc_ref, rr_ref, u, cfg: LightningConfig):
  b, n = pl.program_id(0), pl.program_id(1)
  m = jnp.minimum(cfg.block, cfg.length - u * cfg.block)
  return tile_decays(rate_ref[n], rc_ref[...], rr_ref[...], prev_ref[b, u], last_ref[b, u], m)


def _fwd_kernel(prev_ref, last_ref, rate_ref, q_ref, k_ref, v_ref, rc_ref, rr_ref, s0_ref, o_ref, s_ref, acc_ref,
                *, cfg: LightningConfig):
  u = pl.program_id(2)

  @pl.when(u == 0)
  def _init():
    acc_ref[...] = s0_ref[...]

  o, acc_ref[...] = tile_forward(q_ref[...], k_ref[...], v_ref[...], acc_ref[...],
                                 _decays(prev_ref, last_ref, rate_ref, rc_ref, rr_ref, u, cfg))
  o_ref[...] = o.astype(o_ref.dtype)

  @pl.when(u == pl.num_programs(2) - 1)
  def _finish():
    s_ref[...] = acc_ref[...]


def _dq_kernel(prev_ref, last_ref, rate_ref, q_ref, k_ref, v_ref, rc_ref, rr_ref, s0_ref, do_ref, dq_ref, acc_ref,
               *, cfg: LightningConfig):
  u = pl.program_id(2)

  @pl.when(u == 0)
  def _init():
    acc_ref[...] = s0_ref[...]

  d = _decays(prev_ref, last_ref, rate_ref, rc_ref, rr_ref, u, cfg)
  k, v = k_ref[...], v_ref[...]
  dq_ref[...] = tile_dq(k, v, do_ref[...], acc_ref[...], d)
  acc_ref[...] = next_state(k, v, acc_ref[...], d)


def _dkv_kernel(prev_ref, last_ref, rate_ref, q_ref, k_ref, v_ref, rc_ref, rr_ref, ds_ref, do_ref, dk_ref, dv_ref,
                ds0_ref, acc_ref, *, cfg: LightningConfig):
  i = pl.program_id(2)

  @pl.when(i == 0)
  def _init():
    acc_ref[...] = ds_ref[...]

  d = _decays(prev_ref, last_ref, rate_ref, rc_ref, rr_ref, cfg.num_blocks - 1 - i, cfg)
  dk_ref[...], dv_ref[...], acc_ref[...] = tile_dkv(q_ref[...], k_ref[...], v_ref[...], do_ref[...], acc_ref[...], d)

  @pl.when(i == pl.num_programs(2) - 1)
  def _finish():
    ds0_ref[...] = acc_ref[...]


def _call(kernel, name, cfg, runs, ins, outs, *args, reverse=False):
  q = args[1]
  b, n, _, h = q.shape
  sp = _Specs(cfg, h, reverse)
  spec = {"tok": sp.tok(), "state": sp.state(), "rate": sp.rate()}
  prev, last = block_meta(runs, cfg)[:2]
  grid_spec = pltpu.PrefetchScalarGridSpec(
      num_scalar_prefetch=2, grid=(b, n, cfg.num_blocks),
      in_specs=[spec[s] for s in ins[:4]] + [sp.run_col(), sp.run_row()] + [spec[s] for s in ins[4:]],
      out_specs=[spec[s] for s, _ in outs], scratch_shapes=[pltpu.VMEM((h, h), F32)])
  return pl.pallas_call(
      functools.partial(kernel, cfg=cfg), grid_spec=grid_spec, out_shape=[o for _, o in outs],
      compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "parallel", "arbitrary")),
      interpret=pltpu.InterpretParams() if cfg.interpret else False, name=name,
  )(prev, last, *args[:4], runs[:, :, None], runs[:, None, :], *args[4:])


@functools.partial(jax.jit, static_argnames=("cfg",))
def lightning_forward(q, k, v, rates, state0, runs, *, cfg: LightningConfig):
  """Forward kernel. q, k, v [B, N, Tp, H]; rates [N]; state0 [B, N, H, H]; runs [B, Tp] -> (o, final state)."""
  outs = [("tok", jax.ShapeDtypeStruct(q.shape, q.dtype)), ("state", jax.ShapeDtypeStruct(state0.shape, F32))]
  return _call(_fwd_kernel, "lcjax_lightning_fwd_tpu", cfg, runs, ("rate", "tok", "tok", "tok", "state"), outs,
               rates, q, k, v, state0)


@functools.partial(jax.jit, static_argnames=("cfg",))
def lightning_backward(q, k, v, rates, state0, runs, d_out, d_state, *, cfg: LightningConfig):
  """dQ kernel then dK/dV kernel; returns (dq, dk, dv [B, N, Tp, H] fp32, d_state0 [B, N, H, H] fp32)."""
  grad = jax.ShapeDtypeStruct(q.shape, F32)
  ins = ("rate", "tok", "tok", "tok", "state", "tok")
  (dq,) = _call(_dq_kernel, "lcjax_lightning_dq_tpu", cfg, runs, ins, [("tok", grad)],
                rates, q, k, v, state0, d_out)
  dk, dv, d_state0 = _call(_dkv_kernel, "lcjax_lightning_dkv_tpu", cfg, runs, ins,
                           [("tok", grad), ("tok", grad), ("state", jax.ShapeDtypeStruct(state0.shape, F32))],
                           rates, q, k, v, d_state, d_out, reverse=True)
  return dq, dk, dv, d_state0
