"""Token embedding, also used as the (tied) output projection."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lcjax.quant.linear import dense, embed_lookup
from lcjax.sharding import axes


class Embed(nnx.Module):
  """Lookup table [V, D].

  Args:
    vocab_size: V.  dim: D.  key: PRNG key.
  """

  def __init__(self, vocab_size: int, dim: int, *, key: jax.Array, param_dtype=jnp.float32):
    self.table = axes.param(key, (vocab_size, dim), (axes.VOCAB, axes.EMBED), param_dtype)

  def __call__(self, tokens: jax.Array, dtype) -> jax.Array:
    """[B, T] int -> [B, T, D]."""
    return embed_lookup(self.table, tokens).astype(dtype)

  def attend(self, x: jax.Array) -> jax.Array:
    """Tied output head: [B, T, D] -> [B, T, V] logits (fp32)."""
    return dense("btd,vd->btv", x, self.table, preferred_element_type=jnp.float32)
