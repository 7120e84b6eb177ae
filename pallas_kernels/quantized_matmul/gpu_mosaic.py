"""Quantised matmul, Mosaic GPU target (Hopper): per-channel int8 weights (W8A16), one CTA per column tile.

Each step TMA-copies an x tile [64, 64] (bf16/f16) and an int8 tile [64, bn] into SMEM, converts the integers to
x's dtype in registers (exact: |q| <= 127) and stages them as the wgmma B operand; the f32 accumulator is scaled
per column by d (a COLS-layout row read from HBM) once at the end. Rows are padded to the 64 of one warpgroup,
bn = 64, K a multiple of 64. Group-wise formats (q8_0, q4_0, q4_1) interpret correctly in a per-group variant but
its register layouts do not lower (Mosaic GPU's layout inference rejects [64, 32] sub-tiles), so they are not
offered here: on GPU they take the Triton kernel.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels.mosaic_gpu_math import COLS, full, load_tiles, mm, smem_transforms, stage
from pallas_kernels.quantized_matmul.reference import F32, QSpec

ROWS_PER_CTA = 64
BLOCK_N = 64
STEP = 64  # integer rows per TMA load: [64, 64] tiles are what the WGMMA register layout takes


def fits(spec: QSpec, k: int, n: int, dtype) -> bool:
  """Per-channel int8, K and N multiples of 64, f16/bf16 activations."""
  return (spec.bits == 8 and spec.group == k and k % STEP == 0 and n % BLOCK_N == 0
          and jnp.dtype(dtype) in (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16)))


def _kernel(x_ref, v_ref, d_ref, o_ref, x_smem, q_smem, w_smem, o_smem, barriers, *, steps: int):
  cols = pl.ds(lax.axis_index("n") * BLOCK_N, BLOCK_N)
  tile = pl.ds(lax.axis_index("m") * ROWS_PER_CTA, ROWS_PER_CTA)
  shape = (ROWS_PER_CTA, BLOCK_N)

  def body(i, acc):
    rows = pl.ds(i * STEP, STEP)
    load_tiles([(v_ref.at[rows, cols], q_smem), (x_ref.at[tile, rows], x_smem)], barriers)
    stage(w_smem, q_smem[...].astype(F32))
    return acc + mm(x_smem, w_smem, shape)

  acc = lax.fori_loop(0, steps, body, plgpu.layout_cast(jnp.zeros(shape, F32), plgpu.Layout.WGMMA))
  o_smem[...] = acc * full(plgpu.load(d_ref.at[0, cols], layout=COLS), shape, 1)
  plgpu.commit_smem()
  plgpu.copy_smem_to_gmem(o_smem, o_ref.at[tile, cols])
  plgpu.wait_smem_to_gmem(0)


@functools.partial(jax.jit, static_argnames=("spec", "interpret"))
def quantized_matmul(x, values, scale, *, spec: QSpec, interpret: bool = False):
  """x [M, K] f16/bf16 (M a multiple of 64); values int8 [K, N]; scale [1, N] -> [M, N] f32 (see `fits`)."""
  m, k = x.shape
  n = values.shape[1]
  if m % ROWS_PER_CTA or not fits(spec, k, n, x.dtype):
    raise ValueError(f"mosaic_gpu quantized matmul takes per-channel int8 weights with K, N multiples of 64 and "
                     f"f16/bf16 rows in multiples of 64; got {spec}, x {x.shape} {x.dtype}, N={n}")
  smem = lambda shape, dtype: plgpu.SMEM(shape, dtype, transforms=smem_transforms(dtype, shape[-1]))  # noqa: E731
  kernel = plgpu.kernel(
      functools.partial(_kernel, steps=k // STEP), out_type=jax.ShapeDtypeStruct((m, n), F32),
      scratch_types=(smem((ROWS_PER_CTA, STEP), x.dtype), plgpu.SMEM((STEP, BLOCK_N), values.dtype),
                     smem((STEP, BLOCK_N), x.dtype), plgpu.SMEM((ROWS_PER_CTA, BLOCK_N), F32),
                     plgpu.Barrier(num_barriers=2)),
      grid=(m // ROWS_PER_CTA, n // BLOCK_N), grid_names=("m", "n"),
      interpret=plgpu.InterpretGPUParams() if interpret else None)
  return kernel(x, values, scale.astype(F32))
