"""LongHeads (Lu et al. 2024): every attention head picks its own context chunks, so each head attends within its
trained length while different heads cover different chunks.

The context is split into chunks of C tokens; a chunk is represented by its mean key; each query head scores the
chunks with its own query and attends to the first chunk (attention sink), the chunk being written (local) and its
best-scoring others, at most the trained length in total. The selection is per query head (Hs = N).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from lcjax.kvcache.base import KV_METHODS, BlockSummaryMethod
from lcjax.kvcache.select import block_means, block_scores, exclude, merge, range_items, topk_part


@KV_METHODS.register("longheads")
@dataclasses.dataclass(frozen=True)
class LongHeads(BlockSummaryMethod):
  """Per-head chunk selection: first + current chunk + top chunks by q . mean(k), within the trained length."""

  def select(self, spec, index, q, k, lengths):
    within = dataclasses.replace(spec, budget=min(spec.budget, spec.trained_len))
    m = self.budget_blocks(within, 2)
    n = spec.num_heads
    cur = ((lengths - 1) // self.block_size)[:, None]
    zero = jnp.zeros_like(cur)
    first = range_items(zero, 1, zero, cur + 1)
    last = range_items(cur, 1, zero + 1, cur + 1)                              # skipped when it is the first
    scores = block_scores(q, block_means(index["sums"], index["counts"]))     # [B, N, P]
    scores = jnp.where(index["counts"][:, None] > 0, scores, -jnp.inf)
    scores = exclude(exclude(scores, *first), *last)
    return merge([first, last, topk_part(scores, m - 2)], self.block_size, n)
