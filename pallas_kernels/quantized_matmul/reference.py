"""Quantised matmul references in jnp: the dequantise-then-dot oracle, and the tiled math the kernels share.

The kernels see the weight as (values, scale, mins) arrays in the `lcjax.quant.QArray` layout: values int8 [K, N]
(8-bit) or packed uint8 [K / 2, N] (4-bit: in each 32-row block, low nibbles are rows 0..15, high rows 16..31),
scale and mins [K / group, N]. A 4-bit tile is never interleaved back into rows: x's columns are split instead, so
  x @ W = x_lo @ (d * lo + m) + x_hi @ (d * hi + m),   x_lo = x[:, 32b + j], x_hi = x[:, 32b + 16 + j] (j < 16)
and every step is an elementwise op on the packed [rows, N] tile plus one dot.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

F32 = jnp.float32
BLOCK = 32


@dataclasses.dataclass(frozen=True)
class QSpec:
  """Static description of a quantised weight: bits, 4-bit offset (q4_0: 8), has mins, group size."""

  bits: int
  offset: int
  has_min: bool
  group: int


def split_halves(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """x [M, K] -> (x_lo, x_hi) [M, K / 2]: each 32-column block's first and last 16 columns (4-bit packing order)."""
  m, k = x.shape
  blocks = x.reshape(m, k // BLOCK, 2, BLOCK // 2)
  return blocks[:, :, 0].reshape(m, k // 2), blocks[:, :, 1].reshape(m, k // 2)


def dequant_tile(q: jax.Array, d: jax.Array, mn: jax.Array | None, spec: QSpec, rows_per_group: int) -> jax.Array:
  """Integer tile [R, N] (rows of one or more whole groups, `rows_per_group` each) -> f32 d * (q - offset) (+ m).

  Args:
    q: [R, N] integers (int8, or 4-bit nibbles as uint8).  d, mn: [R / rows_per_group, N] scales / mins.
  """
  r, n = q.shape
  g = r // rows_per_group
  w = (q.astype(jnp.int32) - spec.offset).astype(F32).reshape(g, rows_per_group, n) * d.astype(F32)[:, None, :]
  if mn is not None:
    w = w + mn.astype(F32)[:, None, :]
  return w.reshape(r, n)


def dequantize(values, scale, mins, spec: QSpec) -> jax.Array:
  """The whole weight [K, N] in f32 (rows back in order)."""
  if spec.bits == 8:
    return dequant_tile(values, scale, mins, spec, spec.group)
  half, n = values.shape
  lo = dequant_tile(values & 0x0F, scale, mins, spec, spec.group // 2)
  hi = dequant_tile(values >> 4, scale, mins, spec, spec.group // 2)
  blocks = jnp.stack([lo.reshape(-1, BLOCK // 2, n), hi.reshape(-1, BLOCK // 2, n)], axis=1)
  return blocks.reshape(2 * half, n)


def quantized_matmul_reference(x, values, scale, mins, spec: QSpec) -> jax.Array:
  """x [M, K] @ dequantised W [K, N] -> [M, N] f32 (f32 accumulation, HIGHEST precision)."""
  w = dequantize(values, scale, mins, spec)
  return jnp.dot(x.astype(F32), w, precision=jax.lax.Precision.HIGHEST, preferred_element_type=F32)
