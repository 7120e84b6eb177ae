"""Logical axis names: every parameter, activation and cache axis is named here, never by mesh axis.

Rule sets in `lcjax.sharding.rules` map these names to mesh axes (`data, fsdp, context, tensor`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

# Parameters.
VOCAB, EMBED, Q_HEADS, KV_HEADS, HEAD_DIM, MLP, LAYERS, NORM = (
    "vocab", "embed", "q_heads", "kv_heads", "head_dim", "mlp", "layers", "norm")
# Activations.
ACT_BATCH, ACT_SEQ, ACT_KV_SEQ, ACT_HEADS, ACT_KV_HEADS, ACT_EMBED, ACT_MLP, ACT_VOCAB = (
    "act_batch", "act_seq", "act_kv_seq", "act_heads", "act_kv_heads", "act_embed", "act_mlp", "act_vocab")
# Caches.
CACHE_BATCH, CACHE_SEQ, CACHE_KV_HEADS, CACHE_HEAD_DIM, PAGES = (
    "cache_batch", "cache_seq", "cache_kv_heads", "cache_head_dim", "pages")

PARAM_AXES = (VOCAB, EMBED, Q_HEADS, KV_HEADS, HEAD_DIM, MLP, LAYERS, NORM)
ACTIVATION_AXES = (ACT_BATCH, ACT_SEQ, ACT_KV_SEQ, ACT_HEADS, ACT_KV_HEADS, ACT_EMBED, ACT_MLP, ACT_VOCAB)
CACHE_AXES = (CACHE_BATCH, CACHE_SEQ, CACHE_KV_HEADS, CACHE_HEAD_DIM, PAGES)
ALL_AXES = PARAM_AXES + ACTIVATION_AXES + CACHE_AXES


def param(key: jax.Array, shape: tuple[int, ...], axes: tuple[str, ...], dtype=jnp.float32,
          init: str = "normal", std: float = 0.02) -> nnx.Param:
  """Creates an `nnx.Param` annotated with logical axis names (one per dim).

  Args:
    key: PRNG key.  shape: parameter shape.  axes: logical names from this module, len == len(shape).
    dtype: parameter dtype.  init: "normal" (N(0, std^2)), "ones" or "zeros".
  """
  if len(axes) != len(shape) or any(a not in ALL_AXES for a in axes):
    raise ValueError(f"param axes {axes} must name each of the {len(shape)} dims with names from {PARAM_AXES}")
  if init == "normal":
    value = std * jax.random.normal(key, shape, dtype)
  elif init in ("ones", "zeros"):
    value = (jnp.ones if init == "ones" else jnp.zeros)(shape, dtype)
  else:
    raise ValueError(f"unknown init {init!r}; accepted: normal, ones, zeros")
  # Placement is applied explicitly by lcjax.sharding (rules -> mesh), not eagerly at creation.
  return nnx.Param(value, sharding_names=axes, eager_sharding=False)


def logical_axes(state) -> "nnx.State":
  """Maps each leaf of an `nnx.State` of annotated params to its tuple of logical axis names (a PartitionSpec)."""
  return nnx.get_partition_spec(state)
