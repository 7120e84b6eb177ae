"""Weight-only quantised matmul: x [M, K] @ W [K, N] with W stored as integers + per-group scales (+ mins).

Targets "triton", "mosaic_gpu" (per-channel int8 only), "tpu" and "reference" (dequantise, then one f32 dot). Weights stay in their stored layout
(`lcjax.quant.QArray`: int8 [K, N] or ggml-packed nibbles [K / 2, N]); 4-bit calls split x's columns into each
32-block's first and last halves (`split_halves`), so kernels never interleave nibbles back into rows.
Shapes: M is padded to the target's row tile (decode M = 1..16 is one tile); N must be divisible by a column tile.
"""

from __future__ import annotations

import jax.numpy as jnp

from pallas_kernels.quantized_matmul import gpu_mosaic, gpu_triton, tpu
from pallas_kernels.quantized_matmul.reference import (QSpec, dequant_tile, dequantize, quantized_matmul_reference,
                                                        split_halves)
from pallas_kernels.tile_math import next_power_of_2, round_up

TARGETS = ("triton", "mosaic_gpu", "tpu", "reference")


def _divisor(n: int, candidates) -> int | None:
  return next((c for c in candidates if n % c == 0), None)


def tiles(target: str, m: int, k_rows: int, n: int, group_rows: int, dtype) -> dict | None:
  """Tile sizes of `target` for an [M, K'] x [K', N] call (K' = stored rows), or None when N or K' do not fit."""
  if target == "mosaic_gpu":
    return dict(block_m=gpu_mosaic.ROWS_PER_CTA) if (group_rows == k_rows and k_rows % 64 == 0 and n % 64 == 0
                                                      and jnp.dtype(dtype).itemsize == 2) else None
  if target == "triton":
    bn = _divisor(n, (128, 64, 32, 16))
    bm = min(64, max(16, next_power_of_2(m)))
    return None if bn is None or k_rows % min(group_rows, 32) else dict(block_m=bm, block_n=bn)
  sub = 16 if jnp.dtype(dtype).itemsize == 2 else 8
  bm = min(256, round_up(m, sub))
  bn = _divisor(n, (512, 256, 128)) or (n if n <= 2048 else None)
  bk = _divisor(k_rows, (1024, 512)) if k_rows > 2048 else k_rows
  if bk is not None and group_rows < k_rows and not (bk % group_rows == 0 or group_rows % bk == 0):
    bk = None
  return None if bn is None or bk is None else dict(block_m=bm, block_n=bn, block_k=bk)


def quantized_matmul(x, values, scale, mins, *, spec: QSpec, target: str, interpret: bool = False, **blocks):
  """x [M, K] @ the quantised W -> [M, N] f32.

  Args:
    x: [M, K] activations (f32 or bf16; the dot runs in x's dtype with f32 accumulation).
    values, scale, mins: the QArray leaves (mins None unless the format has them).  spec: `QSpec`.
    target: "triton", "tpu" or "reference".  blocks: tile overrides (block_m, block_n, block_k).
  Raises:
    ValueError: an unknown target or shapes no tile fits.
  """
  if target == "reference":
    return quantized_matmul_reference(x, values, scale, mins, spec)
  if target not in TARGETS:
    raise ValueError(f"unknown quantized-matmul target {target!r}; known: {TARGETS}")
  m = x.shape[0]
  k_rows, n = values.shape
  group_rows = spec.group // 2 if spec.bits == 4 else spec.group
  sizes = tiles(target, m, k_rows, n, group_rows, x.dtype)
  if sizes is None:
    raise ValueError(f"quantized matmul {target}: no tile fits K'={k_rows}, N={n} (group rows {group_rows})")
  sizes.update(blocks)
  mp = round_up(m, sizes["block_m"])
  xp = jnp.pad(x, ((0, mp - m), (0, 0)))
  xs = split_halves(xp) if spec.bits == 4 else (xp,)
  if target == "mosaic_gpu":
    return gpu_mosaic.quantized_matmul(xp, values, scale, spec=spec, interpret=interpret)[:m]
  kernel = gpu_triton.quantized_matmul if target == "triton" else tpu.quantized_matmul
  return kernel(tuple(xs), values, scale, mins, spec=spec, interpret=interpret, **sizes)[:m]


__all__ = ["QSpec", "TARGETS", "dequant_tile", "dequantize", "quantized_matmul", "quantized_matmul_reference",
           "split_halves", "tiles"]
