"""Quantised matmul, TPU target (Mosaic TPU): grid (row tile, column tile, K tile), f32 accumulator in VMEM.

The K axis is innermost and sequential ("arbitrary"): each step DMAs one [bk', bn] tile of stored integers (int8,
or packed nibbles read twice) with its [bk' / g', bn] scales (and mins), dequantises it in VMEM (a reshape that
splits the sublane axis into whole groups, then a broadcast of the scale rows) and feeds the MXU; the output tile
is written on the last K step. Tiles follow TPU tiling: bk' and bn are multiples of 128 or the full dimension;
rows are padded to a multiple of 8 (16 for 16-bit activations).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from pallas_kernels.quantized_matmul.reference import F32, QSpec, dequant_tile


def _kernel(*refs, spec: QSpec, group: int):
  n_x = 2 if spec.bits == 4 else 1
  xs, v_ref, d_ref = refs[:n_x], refs[n_x], refs[n_x + 1]
  m_ref = refs[n_x + 2] if spec.has_min else None
  o_ref, acc_ref = refs[-2], refs[-1]
  k = pl.program_id(2)

  @pl.when(k == 0)
  def _init():
    acc_ref[...] = jnp.zeros(acc_ref.shape, F32)

  packed = v_ref[...]
  rows = min(group, packed.shape[0])
  halves = (packed & 0x0F, packed >> 4) if spec.bits == 4 else (packed,)
  d = d_ref[...]
  mn = None if m_ref is None else m_ref[...]
  acc = acc_ref[...]
  for x_ref, q in zip(xs, halves):
    x = x_ref[...]
    w = dequant_tile(q, d, mn, spec, rows)
    acc = acc + jnp.dot(x, w.astype(x.dtype), preferred_element_type=F32)
  acc_ref[...] = acc

  @pl.when(k == pl.num_programs(2) - 1)
  def _finish():
    o_ref[...] = acc_ref[...]


@functools.partial(jax.jit, static_argnames=("spec", "block_m", "block_n", "block_k", "interpret"))
def quantized_matmul(xs, values, scale, mins, *, spec: QSpec, block_m: int, block_n: int, block_k: int,
                     interpret: bool = False):
  """xs: one [M, K'] (8-bit) or two (4-bit x_lo, x_hi); values [K', N]; scale, mins [K'/g', N] -> [M, N] f32.

  block_m divides M (multiple of 8); block_n divides N; block_k divides K' and is a whole number of groups g'
  (4-bit: group / 2) or, for per-channel scales, divides the group.
  """
  m, kr = xs[0].shape
  n = values.shape[1]
  group = spec.group // 2 if spec.bits == 4 else spec.group
  s_rows = max(1, block_k // group)
  per_s = max(1, group // block_k)  # K tiles per scale row (per-channel: all of them)
  col = lambda rows, f: pl.BlockSpec((rows, block_n), lambda i, j, k: (f(k), j))  # noqa: E731
  in_specs = ([pl.BlockSpec((block_m, block_k), lambda i, j, k: (i, k))] * len(xs)
              + [col(block_k, lambda k: k), col(s_rows, lambda k: k // per_s)]
              + ([col(s_rows, lambda k: k // per_s)] if spec.has_min else []))
  operands = (*xs, values, scale) + ((mins,) if spec.has_min else ())
  return pl.pallas_call(
      functools.partial(_kernel, spec=spec, group=group), grid=(m // block_m, n // block_n, kr // block_k),
      in_specs=in_specs, out_specs=pl.BlockSpec((block_m, block_n), lambda i, j, k: (i, j)),
      out_shape=jax.ShapeDtypeStruct((m, n), F32), scratch_shapes=[pltpu.VMEM((block_m, block_n), F32)],
      compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "parallel", "arbitrary")),
      interpret=pltpu.InterpretParams() if interpret else False, name="lcjax_quantized_matmul_tpu",
  )(*operands)
