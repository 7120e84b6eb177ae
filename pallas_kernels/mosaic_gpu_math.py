"""Tile helpers shared by the Mosaic GPU (Hopper) kernels: wgmma products, SMEM staging, masks in WGMMA layouts.

`cfg` arguments are a kernel config with `scale`, `softcap` and a `mask` property (causal/window/sink).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels.tile_math import F32, tile_visible

ROWS = plgpu.Layout.WGMMA.reduce(1)  # a value per row of a [bq, bk] WGMMA tile
COLS = plgpu.Layout.WGMMA.reduce(0)  # a value per column


def smem_transforms(dtype, minor: int):
  swizzle = plgpu.find_swizzle(minor * jnp.dtype(dtype).itemsize * 8)
  return (plgpu.TilingTransform((8, swizzle // jnp.dtype(dtype).itemsize)), plgpu.SwizzleTransform(swizzle))


def full(x, shape, dim):
  return lax.broadcast_in_dim(x, shape, [dim])


def mm(a_smem, b_smem, shape):
  """a @ b on the tensor cores (wgmma, operands in SMEM; b may be a transposed view) -> fp32 [M, N] registers."""

  def body(acc_ref):
    plgpu.wgmma(acc_ref, a_smem, b_smem)
    return acc_ref[...]

  return pl.run_scoped(body, plgpu.ACC(shape, F32))


def stage(smem, x):
  """Registers -> SMEM operand for the next wgmma (with the fence the async proxy needs)."""
  smem[...] = x.astype(smem.dtype)
  plgpu.commit_smem()


def scores(raw, cfg):
  """Scaled, soft-capped scores and tanh of the cap (None without cap)."""
  s = raw * cfg.scale
  if cfg.softcap is None:
    return s, None
  tanh = jnp.tanh(s / cfg.softcap)
  return cfg.softcap * tanh, tanh


def visible(q_pos, q_seg, kv_pos, kv_seg, shape, q_dim: int, cfg):
  """Tile visibility with queries along dimension `q_dim` of `shape` (0: rows, 1: columns)."""
  kv_dim = 1 - q_dim
  return tile_visible(full(q_pos, shape, q_dim), full(q_seg, shape, q_dim), full(kv_pos, shape, kv_dim),
                      full(kv_seg, shape, kv_dim), **cfg.mask)


def load_tiles(pairs, barrier, first: int = 0):
  """TMA-copies (gmem, smem) pairs, one barrier slot each (from slot `first`), and waits for all."""
  for slot, (src, dst) in enumerate(pairs, first):
    plgpu.copy_gmem_to_smem(src, dst, barrier.at[slot])
  for slot in range(first, first + len(pairs)):
    plgpu.barrier_wait(barrier.at[slot])


def store_tiles(pairs):
  """Commits SMEM and TMA-copies (smem, gmem) pairs out, waiting for completion."""
  plgpu.commit_smem()
  for src, dst in pairs:
    plgpu.copy_smem_to_gmem(src, dst)
  plgpu.wait_smem_to_gmem(0)
