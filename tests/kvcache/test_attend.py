"""Selection attention (the ops block-sparse call, and the gathered-rows path host tiers use) equals masked dense
attention, forward and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import ConfigError, ShapeError
from lcjax.kvcache.attend import Selection, attend_selection, take_rows

B, T, N, K, S, H, C = 2, 1, 4, 2, 40, 8, 4


def _masked_reference(q, k, v, visible):
  """Dense softmax attention with a per-(row, query head) key mask visible [B, N, S]."""
  g = N // K
  kk = jnp.repeat(k, g, axis=1)  # [B, N, S, H]
  vv = jnp.repeat(v, g, axis=1)
  s = jnp.einsum("btnh,bnsh->bnts", q, kk) / np.sqrt(H)
  s = jnp.where(visible[:, :, None], s, -jnp.inf)
  return jnp.einsum("bnts,bnsh->btnh", jax.nn.softmax(s, -1), vv)


def _data(seed=0):
  r = np.random.default_rng(seed)
  q, k, v = (jnp.asarray(r.normal(size=s), jnp.float32) for s in ((B, T, N, H), (B, K, S, H), (B, K, S, H)))
  m = 6
  idx = np.stack([np.stack([r.permutation(S // C)[:m] for _ in range(K)]) for _ in range(B)]).astype(np.int32)
  counts = np.array([[6, 3], [5, 6]], np.int32)
  lengths = np.array([S - 3, S - 10], np.int32)
  return q, k, v, jnp.asarray(idx), jnp.asarray(counts), jnp.asarray(lengths)


def _visible(idx, counts, lengths, heads_per_row):
  vis = np.zeros((B, idx.shape[1], S), bool)
  for b in range(B):
    for h in range(idx.shape[1]):
      for blk in np.asarray(idx)[b, h, :counts[b, h]]:
        vis[b, h, blk * C:(blk + 1) * C] = True
    vis[b, :, int(lengths[b]):] = False
  return jnp.asarray(np.repeat(vis, heads_per_row, axis=1))


@pytest.mark.parametrize("take", [None, take_rows], ids=["ops", "gathered"])
def test_block_sparse_equals_masked_dense_forward_and_grad(take):
  q, k, v, idx, counts, lengths = _data()
  vis = _visible(idx, counts, lengths, N // K)
  f = lambda q, k, v: attend_selection(q, k, v, Selection(idx, counts, C), lengths, take=take)[0]  # noqa: E731
  np.testing.assert_allclose(f(q, k, v), _masked_reference(q, k, v, vis), atol=1e-5, rtol=1e-5)
  w = jnp.asarray(np.random.default_rng(1).normal(size=(B, T, N, H)), jnp.float32)
  got = jax.grad(lambda *a: jnp.sum(f(*a) * w), argnums=(0, 1, 2))(q, k, v)
  want = jax.grad(lambda *a: jnp.sum(_masked_reference(*a, vis) * w), argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("take", [None, take_rows], ids=["ops", "gathered"])
def test_lse_and_per_query_head_selection(take):
  q, k, v, _, _, lengths = _data(2)
  r = np.random.default_rng(3)
  idx = jnp.asarray(np.stack([np.stack([r.permutation(S)[:12] for _ in range(N)]) for _ in range(B)]), jnp.int32)
  counts = jnp.asarray(r.integers(1, 13, (B, N)), jnp.int32)
  out, lse = attend_selection(q, k, v, Selection(idx, counts, 1), lengths, take=take)
  vis = np.zeros((B, N, S), bool)
  for b in range(B):
    for n in range(N):
      vis[b, n, np.asarray(idx)[b, n, :counts[b, n]]] = True
    vis[b, :, int(lengths[b]):] = False
  np.testing.assert_allclose(out, _masked_reference(q, k, v, jnp.asarray(vis)), atol=1e-5, rtol=1e-5)
  kk = jnp.repeat(k, N // K, axis=1)
  s = jnp.einsum("btnh,bnsh->btns", q, kk) / np.sqrt(H)
  want = jax.nn.logsumexp(jnp.where(jnp.asarray(vis)[:, None], s, -jnp.inf), -1)
  np.testing.assert_allclose(lse, want, atol=1e-5, rtol=1e-5)


def test_bad_selection_shapes_raise():
  q, k, v, idx, counts, lengths = _data()
  for take in (None, take_rows):
    with pytest.raises(ShapeError, match="one row per kv head"):
      attend_selection(q, k, v, Selection(idx[:, :1], counts[:, :1], C), lengths, take=take)
  with pytest.raises(ConfigError, match="runs in jnp; impl='pallas_triton'"):
    attend_selection(q, k, v, Selection(idx, counts, C), lengths, impl="pallas_triton", take=take_rows)
  with pytest.raises(ShapeError, match="per kv head"):
    attend_selection(q, k, v, Selection(jnp.zeros((B, 3, 2), jnp.int32), jnp.ones((B, 3), jnp.int32), C), lengths)
