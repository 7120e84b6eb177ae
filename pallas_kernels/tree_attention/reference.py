"""Reference masked tree attention in jnp (exact; the oracle of the kernels)."""

from __future__ import annotations

import jax.numpy as jnp

from pallas_kernels.tile_math import softmax_finish, softmax_init, softmax_update, tile_scores


def tree_tile(q, k, v, ok, *, scale: float, softcap: float | None):
  """One tile: q [R, H], k, v [C, H], ok [R, C] -> (out [R, H] fp32, lse [R, 1] fp32). The body of every target."""
  s, _ = tile_scores(q, k, scale=scale, softcap=softcap)
  return softmax_finish(*softmax_update(s, ok, v, *softmax_init(q.shape[0], q.shape[1])))


def tree_reference(q, k, v, tree_mask, *, scale: float, softcap: float | None = None):
  """q [B, T, N, H], k, v [B, Tk, K, H], tree_mask [B, T, Tk] -> (out [B, T, N, H], lse [B, T, N] fp32)."""
  b, t, n, h = q.shape
  kh = k.shape[2]
  if k.shape[1] == 0:  # an empty tree: nothing visible
    return jnp.zeros_like(q), jnp.full((b, t, n), -jnp.inf, jnp.float32)
  qg = q.reshape(b, t, kh, n // kh, h)
  s = jnp.einsum("btkgh,bskh->bkgts", qg, k, preferred_element_type=jnp.float32) * scale
  if softcap is not None:
    s = softcap * jnp.tanh(s / softcap)
  ok = tree_mask[:, None, None]
  s = jnp.where(ok, s, -jnp.inf)
  m = jnp.max(s, axis=-1, keepdims=True)
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  p = jnp.where(ok, jnp.exp(s - m), 0.0)
  l = jnp.sum(p, axis=-1, keepdims=True)
  out = jnp.einsum("bkgts,bskh->btkgh", p / jnp.where(l > 0, l, 1.0), v.astype(jnp.float32))
  lse = jnp.where(l > 0, m + jnp.log(jnp.where(l > 0, l, 1.0)), -jnp.inf)[..., 0]     # [B, K, G, T]
  return out.reshape(b, t, n, h).astype(q.dtype), jnp.transpose(lse, (0, 3, 1, 2)).reshape(b, t, n)
