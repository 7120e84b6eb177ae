"""The dense KV cache: every key and value of every position, per layer. The baseline every KV method equals."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lcjax.ops.attention import attention
from lcjax.ops.decode import decode
from lcjax.ops.mask import MaskSpec


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DenseLayerKV:
  """One layer's cache.

  Attributes:
    k, v: [B, K, S, H] keys (after RoPE) and values, heads-major; slot s holds position s.
  """

  k: jax.Array
  v: jax.Array

  @classmethod
  def zeros(cls, batch: int, max_len: int, num_kv_heads: int, head_dim: int, dtype) -> "DenseLayerKV":
    """An empty cache of `max_len` slots."""
    shape = (batch, num_kv_heads, max_len, head_dim)
    return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))

  def update(self, k: jax.Array, v: jax.Array, positions: jax.Array) -> "DenseLayerKV":
    """Writes new keys/values [B, T, K, H] at their positions [B, T] (positions past the cache are dropped)."""
    rows = jnp.arange(k.shape[0])[:, None, None]
    heads = jnp.arange(k.shape[2])[None, :, None]
    slots = positions[:, None, :]

    def write(cache, new):  # new [B, T, K, H] -> cache[b, k, positions[b, t]]
      return cache.at[rows, heads, slots].set(jnp.swapaxes(new, 1, 2).astype(cache.dtype), mode="drop")

    return DenseLayerKV(write(self.k, k), write(self.v, v))

  def attend(self, q: jax.Array, mask: MaskSpec, *, attention_impl: str = "auto", decode_impl: str = "auto",
             softcap: float | None = None):
    """Attention of q [B, T, N, H] (positions in `mask.q_positions`) over the cache; returns [B, T, N, H].

    One query token goes through `ops.decode`; longer chunks (prefill) through `ops.attention`, which takes the
    token-major layout (the transpose is small next to a chunk's compute).
    """
    k, v = self.k.astype(q.dtype), self.v.astype(q.dtype)
    if q.shape[1] == 1:
      return decode(q, k, v, mask=mask, impl=decode_impl, softcap=softcap)
    return attention(q, jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2), mask=mask, impl=attention_impl,
                     softcap=softcap)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KVCache:
  """A model's cache: one entry per layer and the number of filled positions per sequence.

  Attributes:
    layers: tuple of per-layer caches (DenseLayerKV or a KV method's layer state).
    lengths: [B] int32, positions [0, lengths) are filled.
  """

  layers: tuple
  lengths: jax.Array

  @property
  def max_len(self) -> int:
    """Slots per sequence (S)."""
    layer = self.layers[0]
    if hasattr(layer, "k"):
      return layer.k.shape[2]
    return layer.kq.shape[2] if hasattr(layer, "kq") else layer.max_len  # int8 layers; a recurrent layer records it

  def with_prompt_lengths(self, lengths) -> "KVCache":
    """Called by `Generator.prefill` with the prompt lengths [B] before prefilling; dense caches need nothing
    (recurrent states do: `lcjax.kvcache.recurrent.HybridCache`)."""
    return self


def init_dense_cache(cfg, batch: int, max_len: int, dtype=jnp.float32) -> KVCache:
  """An empty dense cache for `cfg` (a ModelConfig): L layers of [B, K, max_len, H] (int8: `Int8LayerKV`s)."""
  if any(kind != "attention" for kind in getattr(cfg, "layer_types", ())):
    from lcjax.kvcache.recurrent import init_hybrid_cache  # linear-attention layers keep a state instead
    return init_hybrid_cache(cfg, batch, max_len, dtype)
  if jnp.dtype(dtype) == jnp.int8:
    from lcjax.kvcache.quantized import Int8LayerKV

    layers = tuple(Int8LayerKV.zeros(batch, max_len, cfg.num_kv_heads, cfg.head_dim) for _ in range(cfg.num_layers))
    return KVCache(layers, jnp.zeros((batch,), jnp.int32))
  layers = tuple(DenseLayerKV.zeros(batch, max_len, cfg.num_kv_heads, cfg.head_dim, dtype)
                 for _ in range(cfg.num_layers))
  return KVCache(layers, jnp.zeros((batch,), jnp.int32))
