"""`lcjax.ops.decode`: a few query tokens against a long KV cache (decode and speculative verification).

Like `lcjax.ops.attention` (q [B, T, N, H] with small T, a `MaskSpec` whose positions say which cache slots are
filled), but the cache is heads-major, k/v [B, K, S, H]: each kv head's keys are contiguous, which is what a
memory-bound single-query pass wants (on CPU 2-4x faster than the token-major layout) and what paged kernels read.
Its own registry lets decode-specialised kernels (split-K, paged) plug in beside the generic ones.

| platform | auto order                                          |
|----------|-----------------------------------------------------|
| cpu      | reference (one fused pass; fastest for T <= a few)  |
| gpu      | pallas_mosaic_gpu, pallas_triton, xla_splitk        |
| tpu      | pallas_tpu, xla_splitk                              |
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from lcjax.errors import ShapeError
from lcjax.ops.attention import check_qkv, resolve_impl
from lcjax.ops.attention_reference import soft_cap, split_heads
from lcjax.ops.mask import MaskSpec, token_layout, validate_mask, visible
from lcjax.registry import Registry

DECODE_IMPLS: Registry[Callable] = Registry("decode impl")

AUTO_TABLE: dict[str, tuple[str, ...]] = {
    "cpu": ("reference",),
    "gpu": ("pallas_mosaic_gpu", "pallas_triton", "xla_splitk"),
    "tpu": ("pallas_tpu", "xla_splitk"),
}


def combine_partials(out, lse, axis: int):
  """Merges partial softmax results over disjoint key sets (the split-K reduction).

  Args:
    out: [..., P, ..., H] partial outputs, each normalised over its own keys (P along `axis`).
    lse: same shape without H: log-sum-exp of each part (-inf for empty parts).
    axis: the parts axis.
  Returns:
    (out, lse) with the parts axis reduced: out = sum_p exp(lse_p - lse) out_p, lse = logsumexp_p lse_p.
  """
  m = jnp.max(lse, axis=axis, keepdims=True)
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  w = jnp.exp(lse - m)
  total = jnp.sum(w, axis=axis, keepdims=True)
  merged = jnp.sum(out * (w / jnp.where(total > 0, total, 1.0))[..., None], axis=axis)
  merged_lse = jnp.where(total > 0, m + jnp.log(jnp.where(total > 0, total, 1.0)), -jnp.inf)
  return merged, jnp.squeeze(merged_lse, axis)


def _visible_heads_major(mask, b, t, s_len):
  """Visibility [B, 1, 1, T, S] broadcastable against [B, K, G, T, S] scores."""
  return visible(mask, *token_layout(mask, b, t, s_len))[:, None, None]


@DECODE_IMPLS.register("reference", caps={"grad": True})
def decode_reference(q, k, v, mask: MaskSpec, *, scale: float, softcap: float | None = None):
  """Materialises the [B, K, G, T, S] scores in one pass over a heads-major cache; exact.

  Args:
    q: [B, T, N, H].  k, v: [B, K, S, H].
  Returns:
    [B, T, N, H].
  """
  b, t, n, h = q.shape
  kv_heads, s_len = k.shape[1], k.shape[2]
  groups = n // kv_heads
  # Rows (g, t) of each kv head flattened: plain [G*T, H] x [S, H]^T products, no copy of the cache (XLA CPU
  # transposes the whole cache for the 5-D contraction).
  qg = jnp.transpose(split_heads(q, kv_heads), (0, 2, 3, 1, 4)).reshape(b, kv_heads, groups * t, h)
  s = jnp.einsum("bkqh,bksh->bkqs", qg, k, preferred_element_type=jnp.float32) * scale
  s = s.reshape(b, kv_heads, groups, t, s_len)
  ok = _visible_heads_major(mask, b, t, s_len)
  s = jnp.where(ok, soft_cap(s, softcap), -jnp.inf)
  m = jnp.max(s, axis=-1, keepdims=True)
  p = jnp.where(ok, jnp.exp(s - jnp.where(jnp.isfinite(m), m, 0.0)), 0.0)
  l = jnp.sum(p, axis=-1, keepdims=True)
  weights = (p / jnp.where(l > 0, l, 1.0)).astype(v.dtype).reshape(b, kv_heads, groups * t, s_len)
  out = jnp.einsum("bkqs,bksh->bkqh", weights, v, preferred_element_type=jnp.float32)
  out = out.reshape(b, kv_heads, groups, t, h).transpose(0, 3, 1, 2, 4)
  return out.reshape(b, t, n, h).astype(q.dtype)


@DECODE_IMPLS.register("xla_splitk", caps={"grad": True})
def decode_splitk(q, k, v, mask: MaskSpec, *, scale: float, softcap: float | None = None,
                  num_splits: int = 8):
  """Split-K decode in XLA: the key axis cut into `num_splits` parts computed in parallel, then merged.

  Args:
    q: [B, T, N, H] (T small).  k, v: [B, K, S, H].  mask: visibility.  num_splits: parts of S.
  Returns:
    [B, T, N, H].
  """
  b, t, n, h = q.shape
  kv_heads, s_len = k.shape[1], k.shape[2]
  splits = max(1, min(num_splits, s_len))
  chunk = -(-s_len // splits)
  pad = splits * chunk - s_len
  ok = jnp.pad(_visible_heads_major(mask, b, t, s_len), ((0, 0),) * 4 + ((0, pad),))
  kp = jnp.pad(k, ((0, 0), (0, 0), (0, pad), (0, 0))).reshape(b, kv_heads, splits, chunk, h)
  vp = jnp.pad(v, ((0, 0), (0, 0), (0, pad), (0, 0))).reshape(b, kv_heads, splits, chunk, h)
  qg = split_heads(q, kv_heads)
  s = jnp.einsum("btkgh,bkpch->bkgtpc", qg, kp, preferred_element_type=jnp.float32) * scale
  ok = ok.reshape(b, 1, 1, t, splits, chunk)
  s = jnp.where(ok, soft_cap(s, softcap), -jnp.inf)
  m = jnp.max(s, axis=-1)
  m_safe = jnp.where(jnp.isfinite(m), m, 0.0)
  p = jnp.where(ok, jnp.exp(s - m_safe[..., None]), 0.0)
  l = jnp.sum(p, axis=-1)
  part = jnp.einsum("bkgtpc,bkpch->bkgtph", p, vp.astype(jnp.float32)) / jnp.where(l > 0, l, 1.0)[..., None]
  part_lse = jnp.where(l > 0, m_safe + jnp.log(jnp.where(l > 0, l, 1.0)), -jnp.inf)
  out, _ = combine_partials(part, part_lse, axis=4)  # [B, K, G, T, H]
  return jnp.transpose(out, (0, 3, 1, 2, 4)).reshape(b, t, n, h).astype(q.dtype)


def decode(q: jax.Array, k: jax.Array, v: jax.Array, *, mask: MaskSpec, impl: str = "auto",
           scale: float | None = None, softcap: float | None = None, **options) -> jax.Array:
  """Attention of a few new queries over a KV cache.

  Args:
    q: [B, T, N, H] new queries (T = 1 for decode, a few for speculative verification).
    k, v: [B, K, S, H] heads-major cache; slots not yet written must be hidden by `mask` (e.g. causal positions).
    mask: visibility; `q_positions` are the queries' absolute positions.
    impl: "auto" or a name from `DECODE_IMPLS.names()`.
  Returns:
    [B, T, N, H].
  """
  if k.ndim != 4:
    raise ShapeError(f"decode expects a heads-major cache k, v [B, K, S, H]; got k of shape {k.shape}")
  check_qkv(q, jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2))
  validate_mask(mask, q.shape[0], q.shape[1], k.shape[2])
  name = resolve_impl(DECODE_IMPLS, AUTO_TABLE, impl, options)
  scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
  return DECODE_IMPLS.get(name)(q, k, v, mask, scale=scale, softcap=softcap, **options)
