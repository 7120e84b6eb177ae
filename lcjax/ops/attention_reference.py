"""Reference attention: materialises the [B, K, G, T, S] score tensor. Exact, O(T*S) memory, the oracle for tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lcjax.ops.mask import MaskSpec, token_layout, visible


def split_heads(q: jax.Array, num_kv_heads: int) -> jax.Array:
  """[B, T, N, H] -> [B, T, K, G, H] with query head n = k * G + g (the GQA grouping HF and llama.cpp use)."""
  b, t, n, h = q.shape
  return q.reshape(b, t, num_kv_heads, n // num_kv_heads, h)


def soft_cap(scores: jax.Array, softcap: float | None) -> jax.Array:
  """Logit soft-capping `cap * tanh(s / cap)` (Gemma 2); identity when `softcap` is None."""
  return scores if softcap is None else softcap * jnp.tanh(scores / softcap)


def attention_reference(q, k, v, mask: MaskSpec, *, scale: float, softcap: float | None = None,
                        return_lse: bool = False):
  """Exact masked softmax attention.

  Args:
    q: [B, T, N, H] queries.  k, v: [B, S, K, H] keys and values.
    mask: visibility pattern; fully masked rows give zeros.
    scale: softmax scale applied to q.k.
    softcap: optional logit soft-cap.
    return_lse: also return the log-sum-exp of the visible scores, [B, T, N] (-inf for empty rows).
  Returns:
    [B, T, N, H] in q's dtype (and the lse in fp32 when asked).
  """
  b, t, n, h = q.shape
  s_len, kv_heads = k.shape[1], k.shape[2]
  qg = split_heads(q, kv_heads)
  scores = jnp.einsum("btkgh,bskh->bkgts", qg, k, preferred_element_type=jnp.float32) * scale
  scores = soft_cap(scores, softcap)
  ok = visible(mask, *token_layout(mask, b, t, s_len))[:, None, None]  # [B, 1, 1, T, S]
  scores = jnp.where(ok, scores, -jnp.inf)
  row_max = jnp.max(scores, axis=-1, keepdims=True)
  row_max = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
  probs = jnp.where(ok, jnp.exp(scores - row_max), 0.0)
  denom = jnp.sum(probs, axis=-1, keepdims=True)
  weights = probs / jnp.where(denom > 0, denom, 1.0)
  out = jnp.einsum("bkgts,bskh->btkgh", weights.astype(v.dtype), v, preferred_element_type=jnp.float32)
  out = out.reshape(b, t, n, h).astype(q.dtype)
  if not return_lse:
    return out
  lse = jnp.where(denom[..., 0] > 0, row_max[..., 0] + jnp.log(denom[..., 0]), -jnp.inf)  # [B, K, G, T]
  return out, jnp.transpose(lse, (0, 3, 1, 2)).reshape(b, t, n)
