"""RetroLM (Luo et al. 2024): the KV cache partitioned into contiguous pages; a page retriever scores pages against
the current query and each layer attends to the top pages plus the local context.

Page summaries come from keys (mean key per page: q . mean(k) is the page's mean attention logit); the retriever's
score of page p sums over every query head, so one layer's selection is a set of whole pages shared by all kv
heads: pages are the unit the host tier offloads and the prefetcher fetches (`page_ids`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from lcjax.kvcache.base import KV_METHODS, BlockSummaryMethod
from lcjax.kvcache.select import block_means, block_scores, exclude, merge, range_items, topk_part


@KV_METHODS.register("retrolm")
@dataclasses.dataclass(frozen=True)
class RetroLM(BlockSummaryMethod):
  """Top pages by retriever score + the `local_pages` most recent pages + the first `sink_pages` (the attention
  sink an untrained retriever cannot learn to fetch); page_size = block_size."""

  local_pages: int = 1
  sink_pages: int = 1

  def select(self, spec, index, q, k, lengths):
    fixed = self.local_pages + self.sink_pages
    m = self.budget_blocks(spec, fixed)
    cur = ((lengths - 1) // self.block_size)[:, None]                          # [B, 1] page being written
    zero = jnp.zeros_like(cur)
    sink = range_items(zero, self.sink_pages, zero, jnp.minimum(cur - self.local_pages + 1, self.sink_pages))
    local = range_items(cur - self.local_pages + 1, self.local_pages, zero, cur + 1)
    scores = block_scores(q, block_means(index["sums"], index["counts"])).sum(1, keepdims=True)  # [B, 1, P]
    scores = jnp.where(index["counts"][:, None] > 0, scores, -jnp.inf)
    scores = exclude(exclude(scores, *sink), *local)
    return merge([sink, local, topk_part(scores, m - fixed)], self.block_size, spec.num_kv_heads)


def page_ids(sel) -> list[int]:
  """The pages (of the selection's block size) a selection reads, over all rows and heads: what a host tier loads."""
  import numpy as np

  idx, cnt = np.asarray(sel.indices), np.asarray(sel.counts)
  keep = np.arange(idx.shape[-1])[None, None, :] < cnt[..., None]
  return sorted(set(idx[keep].tolist()))
