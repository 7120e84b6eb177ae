"""int8 KV caches: keys and values stored as int8 with one f32 scale per (token, kv head), dense or under any KV method.

Per-token symmetric quantisation (KIVI quantises values per token; keys per token is the simpler choice that keeps
a decode step's append a single write): for x [H] of one token and head, s = max|x| / 127, q = round(x / s), x ~ q s
(|x - q s| <= s / 2). Bytes per cached token and head: H + 4 instead of 4H (f32) or 2H (bf16).

`Int8LayerKV` follows the `DenseLayerKV` protocol and `Int8MethodLayerKV` the `MethodLayerKV` one; both expose
`k`/`v` as the dequantised [B, K, S, H] arrays, so attention, KV methods' selection and index building run
unchanged. `init_dense_cache(..., dtype=int8)` and `init_method_cache(..., dtype=int8)` build them, so
`Generator(cfg, graphdef, cache_dtype="int8")` and `MethodGenerator(..., cache_dtype="int8")` decode with them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from lcjax.kvcache.dense import DenseLayerKV


def quantize_kv(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """x [..., H] float -> (int8 [..., H], f32 scale [..., 1]), one scale per vector."""
  s = jnp.max(jnp.abs(x.astype(jnp.float32)), axis=-1, keepdims=True) / 127.0
  q = jnp.round(x.astype(jnp.float32) / jnp.where(s == 0, 1.0, s))
  return jnp.clip(q, -127, 127).astype(jnp.int8), s


def dequantize_kv(q: jax.Array, s: jax.Array, dtype=jnp.float32) -> jax.Array:
  """int8 [..., H] and scale [..., 1] -> [..., H] in `dtype`."""
  return (q.astype(jnp.float32) * s).astype(dtype)


def _write(kq, ks, vq, vs, k, v, positions):
  """Quantises k, v [B, T, K, H] and writes them (and their scales) at positions [B, T] (past the end: dropped)."""
  qk, sk = quantize_kv(k)
  qv, sv = quantize_kv(v)
  values = DenseLayerKV(kq, vq).update(qk, qv, positions)
  scales = DenseLayerKV(ks, vs).update(sk, sv, positions)
  return values.k, scales.k, values.v, scales.v


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Int8LayerKV:
  """One layer's int8 cache. kq, vq: [B, K, S, H] int8; k_scale, v_scale: [B, K, S, 1] f32."""

  kq: jax.Array
  k_scale: jax.Array
  vq: jax.Array
  v_scale: jax.Array

  @classmethod
  def zeros(cls, batch: int, max_len: int, num_kv_heads: int, head_dim: int) -> "Int8LayerKV":
    """An empty cache of `max_len` slots."""
    q = lambda: jnp.zeros((batch, num_kv_heads, max_len, head_dim), jnp.int8)  # noqa: E731 (distinct buffers:
    s = lambda: jnp.zeros((batch, num_kv_heads, max_len, 1), jnp.float32)  # noqa: E731  caches are donated)
    return cls(q(), s(), q(), s())

  @property
  def k(self) -> jax.Array:
    return dequantize_kv(self.kq, self.k_scale)

  @property
  def v(self) -> jax.Array:
    return dequantize_kv(self.vq, self.v_scale)

  def update(self, k, v, positions) -> "Int8LayerKV":
    """Quantises and writes k, v [B, T, K, H] at positions [B, T]."""
    return Int8LayerKV(*_write(self.kq, self.k_scale, self.vq, self.v_scale, k, v, positions))

  def attend(self, q, mask, **kwargs):
    """`DenseLayerKV.attend` over the dequantised keys and values."""
    return DenseLayerKV(dequantize_kv(self.kq, self.k_scale, q.dtype),
                        dequantize_kv(self.vq, self.v_scale, q.dtype)).attend(q, mask, **kwargs)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Int8MethodLayerKV:
  """`MethodLayerKV` with int8 keys and values (see `Int8LayerKV`); the method's index and selection see the
  dequantised `k`, `v`."""

  kq: jax.Array
  k_scale: jax.Array
  vq: jax.Array
  v_scale: jax.Array
  index: Any
  qstat: jax.Array | None
  method: Any = dataclasses.field(metadata=dict(static=True))
  spec: Any = dataclasses.field(metadata=dict(static=True))

  k = Int8LayerKV.k
  v = Int8LayerKV.v

  def update(self, k, v, positions) -> "Int8MethodLayerKV":
    """Quantises and writes k, v [B, T, K, H]; a decode step also appends the (dequantised) new keys to the index."""
    from lcjax.kvcache.base import MethodLayerKV

    MethodLayerKV._check(self, k)
    kq, ks, vq, vs = _write(self.kq, self.k_scale, self.vq, self.v_scale, k, v, positions)
    index = self.index
    if k.shape[1] == 1:
      qk, sk = quantize_kv(k)
      qv, sv = quantize_kv(v)
      index = self.method.append(self.spec, index, dequantize_kv(qk, sk), dequantize_kv(qv, sv), positions)
    return dataclasses.replace(self, kq=kq, k_scale=ks, vq=vq, v_scale=vs, index=index)

  def observe(self, q, positions):
    from lcjax.kvcache.base import MethodLayerKV

    return MethodLayerKV.observe(self, q, positions)

  def attend(self, q, mask, **kwargs):
    from lcjax.kvcache.base import MethodLayerKV

    return MethodLayerKV(self.k, self.v, self.index, self.qstat, self.method, self.spec).attend(q, mask, **kwargs)


def int8_method_layer(layer) -> Int8MethodLayerKV:
  """An empty `MethodLayerKV` as its int8 twin (same index, statistics, method and spec)."""
  b, kh, s, h = layer.k.shape
  empty = Int8LayerKV.zeros(b, s, kh, h)
  return Int8MethodLayerKV(empty.kq, empty.k_scale, empty.vq, empty.v_scale, layer.index, layer.qstat, layer.method,
                           layer.spec)


def kv_bytes(cache) -> int:
  """Bytes of a cache's keys and values as stored (int8 values and their scales, or float arrays)."""
  total = 0
  for layer in cache.layers:
    arrays = ((layer.kq, layer.k_scale, layer.vq, layer.v_scale) if hasattr(layer, "kq") else (layer.k, layer.v))
    total += sum(a.size * a.dtype.itemsize for a in arrays)
  return int(total)
