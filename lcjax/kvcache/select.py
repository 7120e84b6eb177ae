"""Selection building blocks shared by the KV methods: top-k with budgets, fixed ranges (sinks, local windows),
merging selections without duplicates, block (page/chunk) summaries from keys, K-means, and RoPE undoing.

Scores use -inf for ineligible items; a selection's valid entries always come first (`counts`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lcjax.kvcache.attend import Selection
from lcjax.layers.rope import rope_cos_sin


_RADIX_MIN = 1024  # rows at least this long use the radix threshold (lax.top_k is cheaper on short rows)


def _sortable_bits(x: jax.Array) -> jax.Array:
  """float32 -> uint32 with the same order (-inf lowest)."""
  bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
  return jnp.where(bits >> 31 == 1, ~bits, bits | jnp.uint32(0x80000000))


def kth_largest_bits(scores: jax.Array, m: int) -> jax.Array:
  """[...] the sortable bits of each row's m-th largest score (m <= X): 32 counting passes, one per bit, in place of
  a sort. The m best items are those above it plus, in index order, enough of those equal to it."""
  key = _sortable_bits(scores)

  def bit(i, t):
    cand = t | (jnp.uint32(1) << (31 - i).astype(jnp.uint32))
    return jnp.where(jnp.sum(key >= cand[..., None], -1) >= m, cand, t)

  return jax.lax.fori_loop(0, 32, bit, jnp.zeros(scores.shape[:-1], jnp.uint32))


def topk_select(scores: jax.Array, m: int) -> tuple[jax.Array, jax.Array]:
  """The m best items per row (ties: lower index first), valid (finite-scored) items first.

  Args:
    scores: [..., X] float, -inf for items that may not be chosen.  m: how many (<= X).
  Returns:
    (indices [..., m] int32, counts [...] int32 = how many of them have finite scores). Long rows (X >= 1024) come
    back in ascending index order (a radix threshold and a compaction), short ones in score order (lax.top_k).
  """
  x = scores.shape[-1]
  m = min(m, x)
  if x < _RADIX_MIN:
    vals, idx = jax.lax.top_k(scores, m)
    return idx.astype(jnp.int32), jnp.sum(jnp.isfinite(vals), axis=-1).astype(jnp.int32)
  key = _sortable_bits(scores)
  t = kth_largest_bits(scores, m)[..., None]
  above = key > t
  tied = (key == t) & (jnp.cumsum(key == t, -1) <= m - jnp.sum(above, -1, keepdims=True))
  chosen = (above | tied) & jnp.isfinite(scores)
  slot = jnp.where(chosen, jnp.cumsum(chosen, -1) - 1, m)                    # compaction, ascending
  lead = scores.shape[:-1]
  grid = jnp.ix_(*(jnp.arange(d) for d in lead)) if lead else ()
  at = tuple(g[..., None] for g in grid) + (slot,)
  idx = jnp.zeros(lead + (m,), jnp.int32).at[at].set(
      jnp.broadcast_to(jnp.arange(x, dtype=jnp.int32), scores.shape), mode="drop")
  return idx, jnp.sum(chosen, -1).astype(jnp.int32)


def range_items(start: jax.Array, size: int, lo: jax.Array, hi: jax.Array):
  """Items start + [0, size), valid where lo <= item < hi.

  Args:
    start, lo, hi: int arrays broadcastable to [B, Hs].  size: static count.
  Returns:
    (items [B, Hs, size] int32, valid [B, Hs, size] bool).
  """
  items = jnp.asarray(start)[..., None] + jnp.arange(size, dtype=jnp.int32)
  valid = (items >= jnp.asarray(lo)[..., None]) & (items < jnp.asarray(hi)[..., None])
  return items.astype(jnp.int32), valid


def as_mask(items: jax.Array, valid: jax.Array, size: int) -> jax.Array:
  """Membership mask [B, Hs, size] of the valid items [B, Hs, I] (a scatter, no [I, size] one-hot)."""
  b, hs, _ = items.shape
  rows = jnp.arange(b)[:, None, None]
  heads = jnp.arange(hs)[None, :, None]
  return jnp.zeros((b, hs, size + 1), bool).at[rows, heads, jnp.where(valid, items, size)].set(True)[..., :size]


def exclude(scores: jax.Array, items: jax.Array, valid: jax.Array) -> jax.Array:
  """scores [B, Hs, X] with the valid `items` [B, Hs, I] set to -inf (already chosen by a fixed part)."""
  return jnp.where(as_mask(items, valid, scores.shape[-1]), -jnp.inf, scores)


def merge(parts, block_size: int, heads: int) -> Selection:
  """One selection from parts (items [B, Hs, I_j], valid [B, Hs, I_j]) that do not overlap: valid first, ascending.

  Parts with Hs = 1 broadcast to `heads` (K or N) rows.
  """
  hs = heads
  items = jnp.concatenate([jnp.broadcast_to(i, (i.shape[0], hs, i.shape[2])) for i, _ in parts], -1)
  valid = jnp.concatenate([jnp.broadcast_to(v, (v.shape[0], hs, v.shape[2])) for _, v in parts], -1)
  big = jnp.iinfo(jnp.int32).max
  items = jnp.sort(jnp.where(valid, items, big), axis=-1)  # ascending positions: the dense cache's key order
  counts = jnp.sum(valid, -1).astype(jnp.int32)
  return Selection(jnp.where(items == big, 0, items).astype(jnp.int32), counts, block_size)


def topk_part(scores: jax.Array, m: int):
  """(items, valid) of the m best finite-scored items: a part for `merge`."""
  idx, counts = topk_select(scores, m)
  return idx, jnp.arange(idx.shape[-1]) < counts[..., None]


def block_sums(k: jax.Array, lengths: jax.Array, block: int) -> tuple[jax.Array, jax.Array]:
  """Per-block key sums and counts over the filled positions.

  Args:
    k: [B, K, S, H].  lengths: [B].  block: C (S padded up to a multiple).
  Returns:
    (sums [B, K, P, H] fp32, counts [B, P] int32) with P = ceil(S / C).
  """
  b, kh, s, h = k.shape
  p = -(-s // block)
  filled = (jnp.arange(p * block) < lengths[:, None])                     # [B, P*C]
  kp = jnp.pad(k.astype(jnp.float32), ((0, 0), (0, 0), (0, p * block - s), (0, 0)))
  kp = kp * filled[:, None, :, None]
  return kp.reshape(b, kh, p, block, h).sum(3), filled.reshape(b, p, block).sum(-1).astype(jnp.int32)


def add_to_blocks(sums, counts, k_new, positions, block: int):
  """Adds new keys k_new [B, T, K, H] at positions [B, T] to running block sums [B, K, P, H] / counts [B, P]."""
  b, t = positions.shape
  page = positions // block
  rows = jnp.arange(b)[:, None]
  sums = sums.at[rows[:, :, None], jnp.arange(sums.shape[1])[None, None, :], page[:, :, None]].add(
      k_new.astype(jnp.float32), mode="drop")
  counts = counts.at[rows, page].add(1, mode="drop")
  return sums, counts


def block_means(sums, counts):
  """Mean key per block [B, K, P, H] (zero for empty blocks)."""
  return sums / jnp.maximum(counts, 1)[:, None, :, None]


def block_scores(q: jax.Array, means: jax.Array) -> jax.Array:
  """Scores of one query per head against block summaries: q [B, 1, N, H], means [B, K, P, H] -> [B, N, P]."""
  b, _, n, h = q.shape
  kh = means.shape[1]
  s = jnp.einsum("bkgh,bkph->bkgp", q[:, 0].reshape(b, kh, n // kh, h).astype(jnp.float32), means)
  return s.reshape(b, n, -1)


def group_max(scores: jax.Array, num_kv_heads: int) -> jax.Array:
  """Per-query-head scores [B, N, X] -> per-kv-head [B, K, X]: the best of each kv head's G query heads."""
  b, n, x = scores.shape
  return scores.reshape(b, num_kv_heads, n // num_kv_heads, x).max(2)


def kmeans(x: jax.Array, valid: jax.Array, num_clusters: int, iters: int = 8):
  """Lloyd's K-means over the valid rows, batched over leading axes; deterministic init from evenly spaced rows.

  Args:
    x: [..., S, D].  valid: [..., S] bool (at least one valid row per batch entry).  num_clusters: C.
  Returns:
    (centroids [..., C, D] fp32, assignment [..., S] int32 (-1 for invalid rows)).
  """
  x = x.astype(jnp.float32)
  n_valid = jnp.maximum(valid.sum(-1), 1)                                   # [...]
  rank = jnp.cumsum(valid, -1) - 1                                          # rank of each valid row
  want = (jnp.arange(num_clusters) * n_valid[..., None]) // num_clusters    # [..., C] ranks to seed from
  pick = jnp.argmax((rank[..., None, :] == want[..., :, None]) & valid[..., None, :], -1)
  cent = jnp.take_along_axis(x, pick[..., None], axis=-2)

  def assign(cent):
    d = jnp.sum(cent * cent, -1)[..., None, :] - 2 * jnp.einsum("...sd,...cd->...sc", x, cent)
    return jnp.argmin(d, -1)

  def step(cent, _):
    a = assign(cent)
    onehot = jax.nn.one_hot(a, num_clusters, dtype=jnp.float32) * valid[..., None]
    tot = jnp.einsum("...sc,...sd->...cd", onehot, x)
    cnt = onehot.sum(-2)[..., None]
    return jnp.where(cnt > 0, tot / jnp.maximum(cnt, 1.0), cent), None

  cent, _ = jax.lax.scan(step, cent, None, length=iters)
  return cent, jnp.where(valid, assign(cent), -1).astype(jnp.int32)


def nearest(x: jax.Array, centroids: jax.Array) -> jax.Array:
  """Index of the nearest centroid: x [..., T, D], centroids [..., C, D] -> [..., T] int32."""
  d = jnp.sum(centroids * centroids, -1)[..., None, :] - 2 * jnp.einsum("...td,...cd->...tc",
                                                                        x.astype(jnp.float32), centroids)
  return jnp.argmin(d, -1).astype(jnp.int32)


def rotate(x: jax.Array, positions: jax.Array, inv_freq: np.ndarray) -> jax.Array:
  """RoPE rotation of heads-major x [B, K, S, H] by angles positions [B, S] (negative positions undo it)."""
  cos, sin = rope_cos_sin(positions, inv_freq)                              # [B, S, H]
  half = x.shape[-1] // 2
  x32 = x.astype(jnp.float32)
  rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
  return x32 * cos[:, None] + rotated * sin[:, None]
