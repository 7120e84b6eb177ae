"""Quantised matmul, Triton target: one program per (row tile, column tile), a loop over K one group at a time.

Each step loads one group's integer rows [g, bn] (4-bit: the packed rows, read twice as low and high nibbles),
its scale (and min) row [1, bn], dequantises in registers and accumulates x_tile @ w_tile in f32, so weights are
read from HBM once, as stored. Stepping a group at a time keeps every op a broadcast of a [1, bn] row (no reshape,
which Triton lowers poorly); per-channel int8 steps 32 rows and reads its single scale row. Triton wants
power-of-two tiles: rows are padded to >= 16, bn divides N.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from pallas_kernels.quantized_matmul.reference import F32, QSpec


def _kernel(*refs, spec: QSpec, step: int, steps: int, group: int):
  n_x = 2 if spec.bits == 4 else 1
  xs, v_ref, d_ref, o_ref = refs[:n_x], refs[n_x], refs[n_x + 1], refs[-1]
  m_ref = refs[n_x + 2] if spec.has_min else None
  halves = (lambda p: p & 0x0F, lambda p: p >> 4) if spec.bits == 4 else (lambda p: p,)

  def body(i, acc):
    row = pl.ds(i * step, step)
    g = pl.ds((i * step) // group, 1)
    d = d_ref[g, :].astype(F32)
    mn = None if m_ref is None else m_ref[g, :].astype(F32)
    packed = v_ref[row, :]
    for x_ref, half in zip(xs, halves):
      w = (half(packed).astype(jnp.int32) - spec.offset).astype(F32) * d
      if mn is not None:
        w = w + mn
      x = x_ref[:, row]
      acc = acc + jnp.dot(x, w.astype(x.dtype), preferred_element_type=F32)
    return acc

  o_ref[...] = lax.fori_loop(0, steps, body, jnp.zeros(o_ref.shape, F32))


@functools.partial(jax.jit, static_argnames=("spec", "block_m", "block_n", "interpret"))
def quantized_matmul(xs, values, scale, mins, *, spec: QSpec, block_m: int, block_n: int, interpret: bool = False):
  """xs: one [M, K'] (8-bit) or two (4-bit x_lo, x_hi) inputs; values [K', N]; scale, mins [K'/g', N] -> [M, N] f32.

  block_m (a power of two >= 16) divides M; block_n (a power of two) divides N; K' = rows of `values`; g' = group
  rows in that space (4-bit: group / 2).
  """
  m, kr = xs[0].shape
  n = values.shape[1]
  group = spec.group // 2 if spec.bits == 4 else spec.group
  step = min(group, 32)
  x_spec = pl.BlockSpec((block_m, kr), lambda i, j: (i, 0))
  col = lambda rows: pl.BlockSpec((rows, block_n), lambda i, j: (0, j))  # noqa: E731
  operands = (*xs, values, scale) + ((mins,) if spec.has_min else ())
  in_specs = [x_spec] * len(xs) + [col(kr), col(scale.shape[0])] + ([col(scale.shape[0])] if spec.has_min else [])
  return pl.pallas_call(
      functools.partial(_kernel, spec=spec, step=step, steps=kr // step, group=group),
      grid=(m // block_m, n // block_n), in_specs=in_specs,
      out_specs=pl.BlockSpec((block_m, block_n), lambda i, j: (i, j)),
      out_shape=jax.ShapeDtypeStruct((m, n), F32),
      compiler_params=pltriton.CompilerParams(num_warps=4, num_stages=2), interpret=interpret,
      name="lcjax_quantized_matmul_triton",
  )(*operands)
