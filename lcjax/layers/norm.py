"""RMSNorm (Zhang & Sennrich 2019): y = x / sqrt(mean(x^2) + eps) * g."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lcjax.sharding import axes


class RMSNorm(nnx.Module):
  """Root-mean-square normalisation over the last axis, computed in fp32.

  Args:
    dim: D.  eps: added to the mean square.  key: unused (ones init), kept for a uniform layer signature.
  """

  def __init__(self, dim: int, eps: float, *, key: jax.Array, param_dtype=jnp.float32):
    self.eps = eps
    self.scale = axes.param(key, (dim,), (axes.NORM,), param_dtype, init="ones")

  def __call__(self, x: jax.Array) -> jax.Array:
    """[..., D] -> [..., D] in x's dtype."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)
