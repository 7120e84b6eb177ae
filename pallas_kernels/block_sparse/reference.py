"""Reference gather-block attention in jnp: gather the selected keys, then one masked softmax. Oracle."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pallas_kernels.tile_math import PAD_KV_SEGMENT, softmax_finish, softmax_init, softmax_update, tile_scores
from pallas_kernels.tile_math import tile_visible


def gathered_reference(q, q_pos, k_sel, v_sel, kv_pos, kv_valid, *, causal=True, window=None, sink=0, scale,
                       softcap=None):
  """Attention of packed rows over already-gathered keys.

  Args:
    q: [B, K, R, H].  q_pos: [B, R] int32.  k_sel, v_sel: [B, K, L, H].  kv_pos: [B, K, L] int32 positions.
    kv_valid: [B, K, L] bool (False for padding / unselected).
  Returns:
    (out [B, K, R, H] fp32, lse [B, K, R] fp32).
  """

  def one(q_h, qp, k_h, v_h, kp, valid):
    ks = jnp.where(valid, 0, PAD_KV_SEGMENT)[None, :]
    ok = tile_visible(qp[:, None], jnp.zeros_like(qp)[:, None], kp[None, :], ks, causal=causal, window=window,
                      sink=sink)
    s, _ = tile_scores(q_h, k_h, scale=scale, softcap=softcap)
    out, lse = softmax_finish(*softmax_update(s, ok, v_h, *softmax_init(*q_h.shape)))
    return out, lse[:, 0]

  per_head = jax.vmap(one, in_axes=(0, None, 0, 0, 0, 0))
  return jax.vmap(per_head)(q, q_pos, k_sel, v_sel, kv_pos, kv_valid)


def block_sparse_reference(q, q_pos, k, v, indices, counts, kv_len, *, block_size: int, **mask):
  """Selected key blocks of a heads-major cache, gathered with `take_along_axis`.

  Args:
    q: [B, K, R, H].  q_pos: [B, R].  k, v: [B, K, S, H] (S a multiple of block_size).
    indices: [B, K, M] block ids.  counts: [B, K].  kv_len: [B].  **mask: causal, window, sink, scale, softcap.
  Returns:
    (out [B, K, R, H] fp32, lse [B, K, R] fp32).
  """
  b, kv_heads, m = indices.shape
  tokens = (indices[..., None] * block_size + jnp.arange(block_size)).reshape(b, kv_heads, m * block_size)
  selected = (jnp.arange(m)[None, None, :] < counts[..., None]).repeat(block_size, axis=-1)
  gather = lambda x: jnp.take_along_axis(x, tokens[..., None], axis=2)  # noqa: E731
  valid = selected & (tokens < kv_len[:, None, None])
  return gathered_reference(q, q_pos, gather(k), gather(v), tokens, valid, **mask)
