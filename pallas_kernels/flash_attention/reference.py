"""Reference flash attention in jnp: the whole [T, S] score matrix per head with the kernels' tile math. Oracle."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pallas_kernels.flash_attention.layout import FlashConfig
from pallas_kernels.tile_math import softmax_finish, softmax_init, softmax_update, tile_scores, tile_visible


def flash_reference(q, k, v, q_pos, q_seg, kv_pos, kv_seg, *, cfg: FlashConfig):
  """Exact attention on the heads-major layout, one tile spanning all keys (differentiable by autodiff).

  Args:
    q: [B, N, T, H].  k, v: [B, K, S, H].  q_pos, q_seg: [B, T].  kv_pos, kv_seg: [B, S].
  Returns:
    (out [B, N, T, H] in q's dtype, lse [B, N, T] fp32, -inf for rows with no visible key).
  """
  groups = q.shape[1] // k.shape[1]

  def one_head(q_h, k_h, v_h, qp, qs, kp, ks):
    ok = tile_visible(qp[:, None], qs[:, None], kp[None, :], ks[None, :], **cfg.mask)
    s, _ = tile_scores(q_h, k_h, scale=cfg.scale, softcap=cfg.softcap)
    out, lse = softmax_finish(*softmax_update(s, ok, v_h, *softmax_init(*q_h.shape)))
    return out.astype(q.dtype), lse[:, 0]

  k, v = jnp.repeat(k, groups, axis=1), jnp.repeat(v, groups, axis=1)
  per_head = jax.vmap(one_head, in_axes=(0, 0, 0, None, None, None, None))
  return jax.vmap(per_head)(q, k, v, q_pos, q_seg, kv_pos, kv_seg)
