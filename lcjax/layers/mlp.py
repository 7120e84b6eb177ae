"""SwiGLU feed-forward (Shazeer 2020): y = W_down (silu(x W_gate) * (x W_up))."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from lcjax.quant.linear import dense
from lcjax.sharding import axes
from lcjax.sharding.partition import constrain


class SwiGLU(nnx.Module):
  """Gated MLP with SiLU gate.

  Args:
    dim: D.  mlp_dim: F.  key: PRNG key for the normal init.
  """

  def __init__(self, dim: int, mlp_dim: int, *, key: jax.Array, param_dtype=jnp.float32):
    k1, k2, k3 = jax.random.split(key, 3)
    self.gate = axes.param(k1, (dim, mlp_dim), (axes.EMBED, axes.MLP), param_dtype)
    self.up = axes.param(k2, (dim, mlp_dim), (axes.EMBED, axes.MLP), param_dtype)
    self.down = axes.param(k3, (mlp_dim, dim), (axes.MLP, axes.EMBED), param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, T, D] -> [B, T, D]."""
    gate = dense("btd,df->btf", x, self.gate)
    up = dense("btd,df->btf", x, self.up)
    hidden = checkpoint_name(jax.nn.silu(gate) * up, "mlp_hidden")
    hidden = constrain(hidden, (axes.ACT_BATCH, axes.ACT_SEQ, axes.ACT_MLP))
    return dense("btf,fd->btd", hidden, self.down)
