"""Reference decode attention in jnp (dense and paged caches): gather, then one masked softmax. Oracle."""

from __future__ import annotations

import jax.numpy as jnp

from pallas_kernels.block_sparse.reference import gathered_reference


def paged_reference(q, q_pos, k_pages, v_pages, page_table, lengths, **mask):
  """Pages gathered in logical order through the page table.

  Args:
    q: [B, K, R, H] packed rows.  q_pos: [B, R].  k_pages, v_pages: [K, P, C, H] page pool.
    page_table: [B, M] int32 physical page of logical page i.  lengths: [B] valid tokens.
    **mask: causal, window, sink, scale, softcap.
  Returns:
    (out [B, K, R, H] fp32, lse [B, K, R] fp32).
  """
  kv_heads, _, c, h = k_pages.shape
  b, m = page_table.shape
  gather = lambda x: jnp.transpose(x[:, page_table], (1, 0, 2, 3, 4)).reshape(b, kv_heads, m * c, h)  # noqa
  pos = jnp.broadcast_to(jnp.arange(m * c, dtype=jnp.int32), (b, kv_heads, m * c))
  return gathered_reference(q, q_pos, gather(k_pages), gather(v_pages), pos, pos < lengths[:, None, None], **mask)
