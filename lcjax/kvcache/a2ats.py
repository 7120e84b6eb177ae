"""A^2ATS (He et al. 2025): Windowed RoPE + query-aware vector quantisation of keys; approximate scores from codes
pick the top-K tokens, exact attention runs on them (the KV itself can stay in a host tier: only the chosen
tokens are read).

WRoPE. The exact score of a query at t and a key at s is q_t^T R_{s-t} k_s with pre-RoPE q, k. For keys outside
the last w positions A^2ATS fixes the relative distance to w: score ~ (R_w q_t)^T k_s, so keys are quantised
position-free (pre-RoPE, recovered here by rotating the cache back by -s); the last w tokens are attended exactly.

Query-aware VQ. With Sigma = E[q_w q_w^T] over the prefill queries (q_w = R_w q_pre), the expected squared score
error of a code c for key k is (k - c)^T Sigma (k - c) = |L^T (k - c)|^2 for Sigma = L L^T. Keys are whitened
(k' = L^T k) and product-quantised in k' space (`subspaces` codebooks of `codes` centroids, K-means); a query's
score is u^T c' with u = L^{-1} q_w, a sum of per-subspace lookup tables.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lcjax.errors import ConfigError
from lcjax.kvcache.base import KV_METHODS, KVMethod
from lcjax.kvcache.select import exclude, group_max, kmeans, merge, nearest, range_items, rotate, topk_part


@KV_METHODS.register("a2ats")
@dataclasses.dataclass(frozen=True)
class A2ATS(KVMethod):
  """WRoPE + query-aware PQ codes -> top-K tokens + the exact window.

  Attributes:
    window: w, the WRoPE distance and the recent tokens attended exactly.  subspaces: PQ subspaces (divides H).
    codes: centroids per subspace.  iters: K-means iterations.  ridge: added to Sigma's diagonal (relative).
  """

  window: int = 32
  subspaces: int = 8
  codes: int = 64
  iters: int = 8
  ridge: float = 1e-3
  uses_queries = True

  def init(self, spec):
    if spec.head_dim % self.subspaces:
      raise ConfigError(f"A2ATS subspaces={self.subspaces} must divide head_dim={spec.head_dim}")
    b, kh, h, p = spec.batch, spec.num_kv_heads, spec.head_dim, self.subspaces
    return {"codebooks": jnp.zeros((b, kh, p, self.codes, h // p), jnp.float32),
            "codes": jnp.zeros((b, kh, spec.max_len, p), self.code_dtype()),
            "whiten": jnp.zeros((b, kh, h, h), jnp.float32), "unwhiten": jnp.zeros((b, kh, h, h), jnp.float32)}

  def code_dtype(self):
    """One byte per code when the codebook has at most 256 centroids."""
    return jnp.uint8 if self.codes <= 256 else jnp.int32

  def _whitened(self, spec, index, k, positions):
    """Whitened pre-RoPE keys split into subspaces: k [B, K, T, H] at positions [B, T] -> [B, K, P, T, H/P]."""
    k_pre = rotate(k, -positions, spec.inv_freq())
    kw = jnp.einsum("bkth,bkhj->bktj", k_pre, index["whiten"])                 # row k^T L = (L^T k)^T
    b, kh, t, h = kw.shape
    return jnp.moveaxis(kw.reshape(b, kh, t, self.subspaces, h // self.subspaces), 3, 2)

  def prefill(self, spec, index, k, v, lengths, qstat):
    h = spec.head_dim
    pos = jnp.broadcast_to(jnp.arange(spec.max_len, dtype=jnp.int32), (spec.batch, spec.max_len))
    w = jnp.full((spec.batch, h), self.window, jnp.int32)
    sigma = qstat / jnp.maximum(lengths * (spec.num_heads // spec.num_kv_heads), 1)[:, None, None, None]
    sigma = jnp.swapaxes(rotate(jnp.swapaxes(rotate(sigma, w, spec.inv_freq()), -1, -2), w, spec.inv_freq()), -1, -2)
    eye = jnp.eye(h, dtype=jnp.float32)
    sigma = sigma + self.ridge * (jnp.trace(sigma, axis1=-2, axis2=-1)[..., None, None] / h + 1e-6) * eye
    chol = jnp.linalg.cholesky(sigma)                                          # L
    index = {**index, "whiten": chol, "unwhiten": jnp.linalg.inv(chol)}
    kw = self._whitened(spec, index, k, pos)                                   # [B, K, P, S, H/P]
    valid = jnp.broadcast_to((pos < lengths[:, None])[:, None, None], kw.shape[:4])
    books, codes = kmeans(kw, valid, self.codes, self.iters)
    return {**index, "codebooks": books, "codes": jnp.moveaxis(jnp.maximum(codes, 0), 2, 3).astype(self.code_dtype())}

  def append(self, spec, index, k, v, positions):
    kw = self._whitened(spec, index, jnp.swapaxes(k, 1, 2), positions)        # [B, K, P, T, H/P]
    new = jnp.moveaxis(nearest(kw, index["codebooks"]), 2, 3).astype(self.code_dtype())  # [B, K, T, P]
    rows = jnp.arange(spec.batch)[:, None, None]
    heads = jnp.arange(spec.num_kv_heads)[None, :, None]
    return {**index, "codes": index["codes"].at[rows, heads, positions[:, None, :]].set(new, mode="drop")}

  def approx_scores(self, spec, index, q, lengths):
    """[B, K, S] approximate WRoPE scores from the codes (best of the G query heads)."""
    b, _, n, h = q.shape
    kh = spec.num_kv_heads
    t = (self.window - (lengths - 1))[:, None]                                  # R_w R_{-t} q
    q_w = rotate(q[:, 0][:, :, None], t, spec.inv_freq())[:, :, 0]            # [B, N, H]
    u = jnp.einsum("bkij,bkgj->bkgi", index["unwhiten"], q_w.reshape(b, kh, n // kh, h))
    lut = jnp.einsum("bkgpd,bkpcd->bkgpc", u.reshape(b, kh, n // kh, self.subspaces, -1), index["codebooks"])
    g, (p, c) = n // kh, lut.shape[-2:]
    flat = index["codes"].astype(jnp.int32) + jnp.arange(p, dtype=jnp.int32) * c   # [B, K, S, P] into [P*C]

    def table_sums(table, idx):  # [G, P*C], [S, P] -> [G, S]: one column gather per (token, subspace)
      return jnp.take(table, idx.reshape(-1), axis=1).reshape(g, -1, p).sum(-1)

    scores = jax.vmap(jax.vmap(table_sums))(lut.reshape(b, kh, g, p * c), flat)   # [B, K, G, S]
    return group_max(scores.reshape(b, n, -1), kh)

  def select(self, spec, index, q, k, lengths):
    b = spec.batch
    local = min(self.window, spec.budget)
    recent = range_items((lengths - local)[:, None], local, jnp.zeros((b, 1), jnp.int32), lengths[:, None])
    scores = self.approx_scores(spec, index, q, lengths)
    scores = jnp.where(jnp.arange(spec.max_len) < lengths[:, None, None], scores, -jnp.inf)
    scores = exclude(scores, *recent)
    return merge([recent, topk_part(scores, spec.budget - local)], 1, spec.num_kv_heads)
