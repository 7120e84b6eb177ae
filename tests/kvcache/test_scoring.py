"""The scoring of selections, per method: recall of the true top-k attention keys on synthetic keys with the
structure each method relies on (pages/chunks of one topic, clusters, anisotropic keys under RoPE), at a budget of
1/4 of the context (a random selection recalls ~0.25)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lcjax.config import RopeConfig
from lcjax.kvcache import make_method
from lcjax.kvcache.base import MethodSpec
from lcjax.kvcache.select import rotate
from lcjax.kvcache.specontext import calibrate_heads

B, N, K, H, S = 1, 4, 2, 16, 256
BUDGET = S // 4
FLAT_ROPE = RopeConfig(theta=1e12)  # rotations ~ identity: positions play no part in block/cluster tests


def _spec(rope=FLAT_ROPE, budget=BUDGET):
  return MethodSpec(0, 1, B, N, K, H, S, S, budget, False, 4096, rope)


def _selected(method, spec, k, q, qstat=None):
  lengths = jnp.full((B,), S, jnp.int32)
  index = method.prefill(spec, method.init(spec), k, k, lengths, qstat)
  sel = method.select(spec, index, q, k, lengths)
  pos, valid = np.asarray(sel.positions()), np.asarray(sel.valid())
  assert int(valid.sum(-1).max()) <= spec.budget + sel.block_size  # within the budget (one block of rounding)
  return [set(pos[0, h][valid[0, h]].tolist()) for h in range(pos.shape[1])]


def _recall(chosen: set, scores: np.ndarray, m: int) -> float:
  top = set(np.argsort(-scores)[:m].tolist())
  return len(chosen & top) / m


def _topic_keys(seed, per_page=16, topics=8):
  """Keys [B, K, S, H] whose pages of `per_page` positions each draw from one topic direction."""
  r = np.random.default_rng(seed)
  dirs = np.linalg.qr(r.normal(size=(H, H)))[0][:topics] * 3  # orthogonal topics
  page_topic = r.integers(0, topics, S // per_page)
  k = dirs[np.repeat(page_topic, per_page)][None, None] + r.normal(size=(B, K, S, H)) * 0.5
  return jnp.asarray(k, jnp.float32), dirs, page_topic


def test_retrolm_pages_recall_the_true_top_keys():
  k, dirs, topic = _topic_keys(0)
  q = jnp.asarray(np.broadcast_to(dirs[topic[3]], (B, 1, N, H)), jnp.float32)
  chosen = _selected(make_method("retrolm", budget=BUDGET, block_size=16), _spec(), k, q)
  assert all(c == chosen[0] for c in chosen)  # one page set per layer, shared by the kv heads
  scores = np.asarray(jnp.einsum("h,ksh->ks", q[0, 0, 0], k[0]))
  relevant = int((topic == topic[3]).sum()) * 16  # the keys of the query's topic
  assert _recall(chosen[0], scores[0], min(relevant, BUDGET - 32)) >= 0.9  # minus the sink and local pages


def test_longheads_heads_pick_their_own_chunks():
  k, dirs, topic = _topic_keys(1)
  t1, t2 = topic[2], next(t for t in topic if t != topic[2])
  q = jnp.asarray(np.stack([dirs[t1], dirs[t2], dirs[t1], dirs[t2]])[None, None], jnp.float32)
  chosen = _selected(make_method("longheads", budget=BUDGET, block_size=16), _spec(), k, q)
  assert len(chosen) == N and chosen[0] != chosen[1]  # per query head
  for n in range(N):
    scores = np.asarray(jnp.einsum("h,sh->s", q[0, 0, n], k[0, n // 2]))
    retrieved = {p // 16 for p in chosen[n]} - {0, S // 16 - 1}  # minus the first and current chunks
    assert len(retrieved) == 2 and all(topic[c] == (t1, t2)[n % 2] for c in retrieved), (n, retrieved)


def test_squeezed_clusters_recall_the_true_top_keys_one_and_two_levels():
  r = np.random.default_rng(2)
  centers = np.linalg.qr(r.normal(size=(H, H)))[0] * 3  # 16 orthogonal cluster centres
  member = r.integers(0, 16, (B, K, S))
  k = jnp.asarray(centers[member] + r.normal(size=(B, K, S, H)) * 0.3, jnp.float32)
  q = jnp.asarray(np.broadcast_to(centers[5] + centers[9], (B, 1, N, H)), jnp.float32)
  for levels in (1, 2):
    method = make_method("squeezed", budget=BUDGET, clusters=16, levels=levels, coarse=4, local=8)
    chosen = _selected(method, _spec(), k, q)
    for h in range(K):
      scores = np.asarray(jnp.einsum("h,sh->s", q[0, 0, 0], k[0, h]))
      relevant = int(np.isin(member[0, h], (5, 9)).sum())  # the keys of the two clusters the query points at
      assert _recall(chosen[h], scores, min(relevant, BUDGET - 8)) >= 0.9, levels


def test_a2ats_codes_recall_the_true_top_keys_under_rope():
  rope = RopeConfig(theta=10000.0)
  spec = _spec(rope)
  r = np.random.default_rng(3)
  scale = np.exp((np.arange(H) % (H // 2)) / 3.0) / 4  # anisotropic, largest in the slowly rotating dims
  pos = jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32), (B, S))
  qdir = r.normal(size=(H,)) * scale
  heavy = r.permutation(S - 16)[:16]  # 16 keys the queries attend to strongly (heavy hitters), at random positions
  k_pre = r.normal(size=(B, K, S, H)) * scale
  k_pre[:, :, heavy] += 3 * qdir / np.linalg.norm(qdir) * np.linalg.norm(scale)
  k = rotate(jnp.asarray(k_pre, jnp.float32), pos, spec.inv_freq())
  q_pre = jnp.asarray(qdir + r.normal(size=(B, N, S, H)) * 0.3 * scale, jnp.float32)  # prefill queries
  qstat = jnp.einsum("bnth,bntj->bhj", q_pre, q_pre)[:, None].repeat(K, 1) / 2
  q = rotate(q_pre[:, :, -1:], pos[:, -1:], spec.inv_freq())[:, :, 0][:, None]  # the last query, after RoPE
  method = make_method("a2ats", budget=BUDGET, window=16, subspaces=4, codes=32)
  chosen = _selected(method, spec, k, q, qstat)
  recalls = []
  for h in range(K):
    scores = np.asarray(jnp.einsum("nh,sh->ns", q[0, 0], k[0, h])).max(0)
    scores[S - 16:] = -np.inf  # the window is attended exactly: recall of the true top-16 outside it
    recalls.append(_recall(chosen[h], scores, 16))
  assert min(recalls) >= 0.9, recalls


def test_sink_window_positions():
  method = make_method("sink_window", budget=BUDGET, sink=4)
  chosen = _selected(method, _spec(), jnp.zeros((B, K, S, H)), jnp.zeros((B, 1, N, H)))
  assert chosen[0] == set(range(4)) | set(range(S - BUDGET + 4, S))


def test_specontext_keeps_the_heads_that_recall_the_big_model():
  r = np.random.default_rng(4)
  big = jax.nn.softmax(jnp.asarray(r.normal(size=(3, B, 2, S)) * 3), -1)
  small = jax.nn.softmax(jnp.asarray(r.normal(size=(2, B, 3, S)) * 3), -1)
  small = small.at[1, :, 2].set(big.mean((0, 2)))  # head (1, 2) reproduces the big model's attention
  assert calibrate_heads(big, small, BUDGET, keep=2)[0] == (1, 2)
  spec = dataclasses.replace(_spec(), budget=BUDGET)
  scores = jnp.asarray(big.mean((0, 2)))
  sel = make_method("specontext", budget=BUDGET, local=8).choose(spec, scores, jnp.full((B,), S, jnp.int32))
  chosen = set(np.asarray(sel.indices)[0, 0, :int(sel.counts[0, 0])].tolist())
  masked = np.asarray(scores[0]).copy()
  masked[S - 8:] = np.inf
  assert _recall(chosen, masked, BUDGET) == 1.0
