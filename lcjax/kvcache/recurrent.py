"""Recurrent-state layer caches for linear-attention layers, beside the dense KV of softmax layers.

A lightning layer's whole past is its fp32 state S [B, N, H, H] (MiniMax's `past_key_value`), constant in T. A
hybrid model's cache is a `HybridCache`: the `KVCache` of `Generator` (one entry per layer, `lengths`) whose
lightning entries are `RecurrentLayerState`s. Recurrent layers cannot overwrite a position the way a dense cache
does, so right padding of a batched prefill must never enter the state: `Generator.prefill` tells the cache each
row's prompt length (`with_prompt_lengths`, stored per layer as `limit`) and tokens at or past it are left out;
the model lifts the limit once decoding starts (`lengths > 0`, `HybridCache.for_step`).
Layer protocol: `mix(q, k, v, decay, positions, ...)` -> (out, new state): attention and state update together,
since the chunk's own tokens attend to each other through the intra-block product.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lcjax.kvcache.dense import DenseLayerKV, KVCache
from lcjax.ops.linear_attention import linear_attention
from lcjax.sharding import axes

NO_LIMIT = jnp.iinfo(jnp.int32).max


def absorb(state, k, v, rates, counts):
  """The state after the first `counts` tokens of a chunk (the rest is padding and leaves no trace).

  S' = lambda^n S + sum_{j < n} lambda^(n-1-j) k_j^T v_j  per row (n = counts[b]).
  Args:
    state: [B, N, H, H] fp32.  k, v: [B, T, N, H].  rates: [N].  counts: [B] int32 in [0, T].
  Returns:
    [B, N, H, H] fp32.
  """
  j = jnp.arange(k.shape[1])
  age = (counts[:, None] - 1 - j).astype(jnp.float32)                            # [B, T]
  w = jnp.where(age[:, :, None] >= 0, jnp.exp(-rates * jnp.maximum(age, 0)[:, :, None]), 0.0)   # [B, T, N]
  keep = jnp.exp(-rates[None] * counts[:, None].astype(jnp.float32))             # [B, N]
  return keep[..., None, None] * state + jnp.einsum("btnh,btn,btne->bnhe", k.astype(jnp.float32), w,
                                                    v.astype(jnp.float32))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RecurrentLayerState:
  """One lightning layer's cache.

  Attributes:
    state: [B, N, H, H] fp32 decayed sum of k^T v over the absorbed tokens.
    limit: [B] int32; tokens at positions >= limit are right padding of a prefill and are not absorbed.
    max_len: slots of the model's dense layers (static; the state itself has no length).
  """

  state: jax.Array
  limit: jax.Array
  max_len: int = dataclasses.field(metadata=dict(static=True), default=0)

  @classmethod
  def zeros(cls, batch: int, num_heads: int, head_dim: int, max_len: int) -> "RecurrentLayerState":
    return cls(jnp.zeros((batch, num_heads, head_dim, head_dim), jnp.float32),
               jnp.full((batch,), NO_LIMIT, jnp.int32), max_len)

  def logical_axes(self) -> "RecurrentLayerState":
    """The same structure with logical axis names: state [cache_batch, cache_kv_heads, -, -], limit [cache_batch]."""
    return RecurrentLayerState((axes.CACHE_BATCH, axes.CACHE_KV_HEADS, None, None), (axes.CACHE_BATCH,),
                               self.max_len)

  def mix(self, q, k, v, decay, positions, *, impl: str = "auto", block_size: int | None = None,
          scale: float = 1.0):
    """Linear attention of a chunk q, k, v [B, T, N, H] continuing the state; returns (out, new layer state).

    Args:
      decay: [N] rates.  positions: [B, T] contiguous positions of the chunk.
    """
    limit = self.limit
    if impl == "auto" and q.shape[1] == 1:
      impl = "recurrent"  # one token: MiniMax's decode step S = lambda S + k^T v, o = q S
    out, state = linear_attention(q, k, v, decay, initial_state=self.state, return_state=True, impl=impl,
                                  block_size=block_size, scale=scale)
    counts = jnp.clip(limit - positions[:, 0], 0, q.shape[1]).astype(jnp.int32)
    padded = jnp.any(counts < q.shape[1])
    state = jax.lax.cond(padded, lambda: absorb(self.state, k, v, decay, counts), lambda: state)
    return out, dataclasses.replace(self, state=state)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class HybridCache(KVCache):
  """A `KVCache` whose layers mix `DenseLayerKV` and `RecurrentLayerState`."""

  def _limits(self, limit) -> "HybridCache":
    layers = tuple(dataclasses.replace(x, limit=limit) if isinstance(x, RecurrentLayerState) else x
                   for x in self.layers)
    return dataclasses.replace(self, layers=layers)

  def with_prompt_lengths(self, lengths) -> "HybridCache":
    """Recurrent layers will not absorb tokens at or past each row's prompt length [B] (right padding)."""
    return self._limits(jnp.asarray(lengths, jnp.int32))

  def for_step(self) -> "HybridCache":
    """The cache a forward step sees: limits lifted once decoding has begun (lengths > 0)."""
    first = next((x for x in self.layers if isinstance(x, RecurrentLayerState)), None)
    return self if first is None else self._limits(jnp.where(self.lengths > 0, NO_LIMIT, first.limit))


def init_hybrid_cache(cfg, batch: int, max_len: int, dtype=jnp.float32) -> HybridCache:
  """An empty cache for a model with `cfg.layer_types`: dense KV for attention layers, a state for the others."""
  layers = tuple(
      DenseLayerKV.zeros(batch, max_len, cfg.num_kv_heads, cfg.head_dim, dtype) if kind == "attention"
      else RecurrentLayerState.zeros(batch, cfg.num_heads, cfg.head_dim, max_len) for kind in cfg.layer_types)
  return HybridCache(layers, jnp.zeros((batch,), jnp.int32))


def cache_bytes(cache) -> dict[str, int]:
  """Bytes of a cache per layer kind: {"attention": ..., "lightning": ..., "total": ...}."""
  out = {"attention": 0, "lightning": 0}
  for layer in cache.layers:
    kind = "lightning" if isinstance(layer, RecurrentLayerState) else "attention"
    out[kind] += sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(layer))
  out["total"] = out["attention"] + out["lightning"]
  return out
