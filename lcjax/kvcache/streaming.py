"""StreamingLLM's attention sinks + sliding window (Xiao et al. 2024), and ReLIC's Sink-KV.

sink_window: each decode step attends to the first `sink` tokens and the most recent budget - sink tokens.
sink_kv: the window plus one learnable key with a zero value per layer and kv head, prepended after RoPE. With a
zero value the slot only adds exp(q.k_sink / sqrt(H)) to the softmax denominator, so

  out = out_window * Z / (Z + exp(s0)) = out_window * sigmoid(lse_window - s0),   s0 = q . k_sink / sqrt(H)

which is how `finish` applies it (exact; the gradient reaches k_sink through s0). Prefill chunks see the slot as an
extra key at position -1 (visible to every query under the causal mask).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lcjax.kvcache.base import KV_METHODS, KVMethod
from lcjax.kvcache.dense import DenseLayerKV
from lcjax.kvcache.select import merge, range_items
from lcjax.ops.attention_reference import split_heads


@KV_METHODS.register("sink_window")
@dataclasses.dataclass(frozen=True)
class SinkWindow(KVMethod):
  """First `sink` tokens plus the most recent (budget - sink) tokens, token-level."""

  sink: int = 4

  def select(self, spec, index, q, k, lengths):
    sink = min(self.sink, spec.budget)
    window = spec.budget - sink
    b = spec.batch
    lo = jnp.zeros((b, 1), jnp.int32)
    parts = [range_items(lo, sink, lo, lengths[:, None])] if sink else []
    start = (lengths - window)[:, None]
    parts.append(range_items(start, window, jnp.full((b, 1), sink), lengths[:, None]))
    return merge(parts, 1, spec.num_kv_heads)


@KV_METHODS.register("sink_kv")
@dataclasses.dataclass(frozen=True)
class SinkKV(SinkWindow):
  """ReLIC Sink-KV: a learnable key / zero value slot per layer and kv head, with a sliding window (no token sinks
  by default: the slot replaces them)."""

  sink: int = 0

  def init(self, spec):
    return {"sink_key": jnp.zeros((spec.num_kv_heads, spec.head_dim), jnp.float32)}

  def finish(self, spec, index, q, out, lse):
    s0 = sink_scores(q, index["sink_key"])                                     # [B, T, N]
    return (out.astype(jnp.float32) * jax.nn.sigmoid(lse - s0)[..., None]).astype(out.dtype)

  def prefill_attend(self, spec, index, layer, q, mask, **kwargs):
    b, kh, s, h = layer.k.shape
    slot = jnp.broadcast_to(index["sink_key"].astype(layer.k.dtype)[None, :, None], (b, kh, 1, h))
    k = jnp.concatenate([slot, layer.k], axis=2)
    v = jnp.concatenate([jnp.zeros_like(slot), layer.v], axis=2)
    kv_pos = jnp.broadcast_to(jnp.arange(-1, s, dtype=jnp.int32), (b, s + 1))
    return DenseLayerKV(k, v).attend(q, mask.with_arrays(kv_positions=kv_pos), **kwargs)


def sink_scores(q, sink_key):
  """s0 = q . k_sink / sqrt(H): q [B, T, N, H], sink_key [K, H] -> [B, T, N] fp32."""
  b, t, n, h = q.shape
  s = jnp.einsum("btkgh,kh->btkg", split_heads(q, sink_key.shape[0]).astype(jnp.float32), sink_key)
  return s.reshape(b, t, n) / math.sqrt(h)


def with_sink_keys(cache, keys):
  """The cache with trained Sink-KV keys [L, K, H] installed in every layer."""
  layers = tuple(dataclasses.replace(l, index={**l.index, "sink_key": jnp.asarray(keys[i], jnp.float32)})
                 for i, l in enumerate(cache.layers))
  return dataclasses.replace(cache, layers=layers)
