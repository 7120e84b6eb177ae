"""Masked tree attention kernel: grid (batch, kv head), the whole tree in one tile, for the Triton and Mosaic TPU
targets (the same body; only the compiler parameters and the interpreter differ)."""

from __future__ import annotations

import functools

import jax
from jax.experimental import pallas as pl

from pallas_kernels.tile_math import F32
from pallas_kernels.tree_attention.reference import tree_tile


def _kernel(q_ref, k_ref, v_ref, m_ref, o_ref, lse_ref, *, scale, softcap):
  out, lse = tree_tile(q_ref[...], k_ref[...], v_ref[...], m_ref[...] > 0, scale=scale, softcap=softcap)
  o_ref[...] = out
  lse_ref[...] = lse


def _target_options(target: str, interpret: bool) -> dict:
  if target == "triton":
    from jax.experimental.pallas import triton as pltriton
    return dict(compiler_params=pltriton.CompilerParams(num_warps=4, num_stages=1), interpret=interpret)
  if target == "tpu":
    from jax.experimental.pallas import tpu as pltpu
    return dict(compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "parallel")),
                interpret=pltpu.InterpretParams() if interpret else False)
  raise ValueError(f"tree attention kernel target must be 'triton' or 'tpu', got {target!r}")


@functools.partial(jax.jit, static_argnames=("target", "scale", "softcap", "interpret"))
def tree_kernel(q, k, v, mask, *, target: str, scale: float, softcap: float | None, interpret: bool = False):
  """q [B, K, R, H], k, v [B, K, C, H], mask [B, R, C] int32 -> (out [B, K, R, H], lse [B, K, R, 1]) fp32."""
  b, kh, r, h = q.shape
  c = k.shape[2]
  per_head = lambda *shape: pl.BlockSpec((None, None) + shape, lambda b, k: (b, k, 0, 0))  # noqa: E731
  return pl.pallas_call(
      functools.partial(_kernel, scale=scale, softcap=softcap), grid=(b, kh),
      in_specs=[per_head(r, h), per_head(c, h), per_head(c, h), pl.BlockSpec((None, r, c), lambda b, k: (b, 0, 0))],
      out_specs=[per_head(r, h), per_head(r, 1)],
      out_shape=[jax.ShapeDtypeStruct((b, kh, r, h), F32), jax.ShapeDtypeStruct((b, kh, r, 1), F32)],
      name=f"lcjax_tree_attention_{target}", **_target_options(target, interpret),
  )(q, k, v, mask)
