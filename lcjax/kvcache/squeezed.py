"""Squeezed Attention (Hooper et al. 2024): offline K-means clustering of the fixed context's keys per layer and kv
head; at query time the centroids say which clusters' keys matter, and exact attention runs over those keys.

Clusters are ranked by q . centroid (the best of the kv head's G query heads) and taken in that order until the
budget (a fraction of the keys) is filled: every key inherits its cluster's score and the top-budget keys are kept
(the last cluster may be cut). The hierarchical variant (levels=2) clusters the centroids again; a query first
scores the coarse centroids and only fine clusters under the best coarse ones stay candidates. New keys written
while decoding join their nearest cluster; the `local` most recent tokens are always attended.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from lcjax.errors import ConfigError
from lcjax.kvcache.base import KV_METHODS, KVMethod
from lcjax.kvcache.select import exclude, group_max, kmeans, merge, nearest, range_items, topk_part


@KV_METHODS.register("squeezed")
@dataclasses.dataclass(frozen=True)
class Squeezed(KVMethod):
  """Centroid lookup -> top clusters' keys within the budget + a local window.

  Attributes:
    clusters: fine clusters per kv head (0: context // 16).  levels: 1, or 2 for hierarchical centroids.
    coarse: coarse clusters for levels=2 (0: clusters // 8).  local: recent tokens always attended.
    iters: Lloyd iterations.
  """

  clusters: int = 0
  levels: int = 1
  coarse: int = 0
  local: int = 32
  iters: int = 8

  def _sizes(self, spec):
    if self.levels not in (1, 2):
      raise ConfigError(f"Squeezed attention levels must be 1 or 2, got {self.levels}")
    c = self.clusters or max(4, spec.context // 16)
    return c, (self.coarse or max(2, c // 8))

  def init(self, spec):
    c, c2 = self._sizes(spec)
    b, kh, h = spec.batch, spec.num_kv_heads, spec.head_dim
    return {"centroids": jnp.zeros((b, kh, c, h), jnp.float32), "assign": jnp.full((b, kh, spec.max_len), -1,
            jnp.int32), "coarse": jnp.zeros((b, kh, c2, h), jnp.float32), "parent": jnp.zeros((b, kh, c), jnp.int32)}

  def prefill(self, spec, index, k, v, lengths, qstat):
    c, c2 = self._sizes(spec)
    valid = jnp.broadcast_to((jnp.arange(spec.max_len) < lengths[:, None])[:, None], k.shape[:3])
    cent, assign = kmeans(k, valid, c, self.iters)
    out = {**index, "centroids": cent, "assign": assign}
    if self.levels == 2:
      coarse, parent = kmeans(cent, jnp.ones(cent.shape[:3], bool), c2, self.iters)
      out.update(coarse=coarse, parent=parent)
    return out

  def append(self, spec, index, k, v, positions):
    new = nearest(jnp.swapaxes(k, 1, 2), index["centroids"])                   # [B, K, T]
    rows = jnp.arange(spec.batch)[:, None, None]
    heads = jnp.arange(spec.num_kv_heads)[None, :, None]
    return {**index, "assign": index["assign"].at[rows, heads, positions[:, None, :]].set(new, mode="drop")}

  def cluster_scores(self, spec, index, q):
    """[B, K, C] score per fine cluster (-inf for clusters pruned at the coarse level)."""
    kh = spec.num_kv_heads
    qh = q[:, 0].astype(jnp.float32)                                          # [B, N, H]
    per_head = lambda cent: group_max(jnp.einsum(  # noqa: E731
        "bkgh,bkch->bkgc", qh.reshape(qh.shape[0], kh, -1, qh.shape[-1]), cent).reshape(qh.shape[0], -1,
                                                                                         cent.shape[2]), kh)
    fine = per_head(index["centroids"])
    if self.levels == 1 or spec.full:
      return fine
    coarse = per_head(index["coarse"])                                        # [B, K, C2]
    keep = max(1, math.ceil(coarse.shape[-1] * min(1.0, 2.0 * spec.budget / spec.context)))
    thresh = jnp.sort(coarse, -1)[..., -keep][..., None]
    kept = jnp.take_along_axis(coarse >= thresh, index["parent"], -1)
    return jnp.where(kept, fine, -jnp.inf)

  def select(self, spec, index, q, k, lengths):
    local = min(self.local, spec.budget)
    b = spec.batch
    recent = range_items((lengths - local)[:, None], local, jnp.zeros((b, 1), jnp.int32), lengths[:, None])
    cs = self.cluster_scores(spec, index, q)
    assign = index["assign"]
    scores = jnp.where(assign >= 0, jnp.take_along_axis(cs, jnp.maximum(assign, 0), -1), -jnp.inf)
    scores = jnp.where(jnp.arange(spec.max_len) < lengths[:, None, None], scores, -jnp.inf)
    scores = exclude(scores, *recent)
    return merge([recent, topk_part(scores, spec.budget - local)], 1, spec.num_kv_heads)
