"""ByteScale HDP: the balance scheduler, the packed layout, the `hdp` attention impl and an end-to-end step."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lcjax.config import MeshConfig
from lcjax.errors import ShapeError
from lcjax.models.build import init_model
from lcjax.ops import MaskSpec, attention
from lcjax.sharding import hdp, steps
from lcjax.sharding import partition as part
from lcjax.sharding.mesh import create_mesh
from tests.tiny import TINY

R = 8


def long_tail(n=128, max_len=8192, seed=0):
  """A fixed long-tail mix: Pareto(1.1) lengths from 128 tokens, capped at max_len."""
  rng = np.random.default_rng(seed)
  return np.minimum((rng.pareto(1.1, n) + 1) * 128, max_len).astype(int)


def _check_layout(plan, batch):
  """Every token of every sequence appears exactly once, at its true position; capacity holds."""
  seg, pos = batch["segment_ids"], batch["positions"]
  for i, n in enumerate(plan.lengths):
    where = seg == i + 1
    np.testing.assert_array_equal(np.sort(pos[where]), np.arange(n))
    ranks = np.nonzero(where.any(axis=1))[0]
    group = [g for g in plan.groups if set(ranks) <= set(g)]
    assert len(ranks) == 1 or (group and len(group[0]) == len(ranks)), (i, ranks, plan.groups)
    if len(ranks) > 1:  # a split sequence lives in the travelling window of its group's ranks
      assert not where[:, plan.window:].any()
  assert np.all(batch["loss_mask"] == (seg > 0))
  assert plan.tokens().max() <= plan.capacity


def test_scheduler_balances_a_long_tail_mix():
  lengths = long_tail()
  capacity = int(np.ceil(lengths.sum() / R * 1.5 / 64) * 64)
  plan = hdp.schedule(lengths, R, capacity)
  assert plan.imbalance() <= 1.10, plan.costs()
  assert hdp.round_robin_plan(lengths, R).imbalance() > 10  # plain data parallelism on the same mix is far off
  np.testing.assert_allclose(plan.costs().sum(), float(np.sum(lengths.astype(float) ** 2)))
  assert plan.groups and all(len(g) > 1 for g in plan.groups)
  short = [i for i, n in enumerate(lengths) if n <= 512]
  on_one_rank = {p.seq for pieces in plan.ranks for p in pieces if p.parts == 1}
  assert set(short) <= on_one_rank  # short sequences stay whole
  sequences = [np.arange(n + 1) % 97 for n in lengths]
  _check_layout(plan, hdp.pack(sequences, plan))
  assert hdp.schedule(lengths, R, capacity) == plan  # a pure function


def test_scheduler_errors_and_trivial_batches():
  with pytest.raises(ShapeError, match="sequence 1 of 100 tokens is longer than the HDP ring can hold: 2 ranks x "
                                       "40 tokens"):
    hdp.schedule([10, 100], 2, 40)
  with pytest.raises(ShapeError, match="does not fit 2 ranks x 64 tokens"):
    hdp.schedule([30] * 10, 2, 64)
  plan = hdp.schedule([5, 5, 5, 5], 4, 8)  # all short and equal: one per rank, nobody communicates
  assert plan.groups == () and plan.window == 0 and plan.imbalance() == 1.0
  assert hdp.ring_bytes(plan, 100) == 0


@pytest.fixture(scope="module")
def mesh():
  return create_mesh(MeshConfig(fsdp=8))


def _hlo_pairs(text: str) -> set[tuple[int, int]]:
  pairs = set()
  for block in re.findall(r"source_target_pairs=\{([^}]*(?:\}[^}]*)*?)\}\}", text):
    pairs |= {tuple(map(int, p)) for p in re.findall(r"\{?(\d+),(\d+)", block)}
  return pairs


def test_hdp_attention_equals_reference_and_talks_only_inside_groups(mesh):
  lengths = [30, 18, 9, 8, 8, 7, 6, 6, 5, 5, 4, 4, 3, 3]
  plan = hdp.schedule(lengths, R, 16)
  assert sorted(len(g) for g in plan.groups) == [2, 3]  # two rings of different sizes, three ranks alone
  batch = hdp.pack([np.zeros(n + 1) for n in lengths], plan)
  c, n, k, h = plan.capacity, 4, 2, 8
  ks = jax.random.split(jax.random.PRNGKey(0), 3)
  q, kk, v = (jax.random.normal(key, (R, c, heads, h)) for key, heads in zip(ks, (n, k, k)))
  seg, pos, real = (jnp.asarray(batch[x]) for x in ("segment_ids", "positions", "loss_mask"))

  def loss(impl, q, kk, v, seg, pos):
    m = MaskSpec(causal=True, q_segment_ids=seg, kv_segment_ids=seg, q_positions=pos, kv_positions=pos)
    out = attention(q, kk, v, mask=m, impl=impl)
    return jnp.sum(jnp.sin(out) * real.reshape(out.shape[:2])[..., None, None]), out

  def flat(x):  # every rank's tokens in one row: documents and positions make it the same attention
    return x.reshape((1, R * c) + x.shape[2:])

  (_, want_out), want = jax.value_and_grad(
      lambda q, kk, v: loss("reference", flat(q), flat(kk), flat(v), flat(seg), flat(pos)), argnums=(0, 1, 2),
      has_aux=True)(q, kk, v)
  with part.use_sharding(mesh, "fsdp", hdp=plan.ring_layout):
    fn = jax.jit(jax.value_and_grad(lambda q, kk, v: loss("hdp", q, kk, v, seg, pos), argnums=(0, 1, 2),
                                    has_aux=True))
    (_, got_out), got = fn(q, kk, v)
    text = fn.lower(q, kk, v).compile().as_text()
  mask = np.asarray(real, bool)
  np.testing.assert_allclose(np.asarray(got_out)[mask], np.asarray(want_out).reshape(got_out.shape)[mask],
                             rtol=2e-5, atol=2e-5)
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-5)
  pairs = _hlo_pairs(text)
  in_group = {(a, b) for grp in plan.groups for a in grp for b in grp if a != b}
  assert pairs and pairs <= in_group, (pairs, plan.groups)
  loners = set(range(R)) - {r for grp in plan.groups for r in grp}
  assert loners and not any(a in loners or b in loners for a, b in pairs)


def test_hdp_step_loss_and_grads_equal_plain_data_parallel(mesh):
  lengths = [120, 70, 40, 33, 20, 18, 15, 12, 10, 9, 8, 8, 7, 6, 5, 5, 4, 4, 3, 3]
  rng = np.random.default_rng(0)
  cfg = TINY.replace(max_seq_len=256)
  sequences = [rng.integers(0, cfg.vocab_size, n + 1) for n in lengths]
  plan = hdp.schedule(lengths, R, 96)
  assert plan.groups  # the long sequences are split
  graphdef, params = nnx.split(init_model(cfg))
  ps = part.param_shardings(params, mesh, "fsdp")
  sharded = part.place(params, ps)
  dp_batch = hdp.pack_padded(sequences, rows=24)
  bs = part.batch_shardings(dp_batch, mesh, "fsdp")
  want_loss, _, want_grads = steps.make_grad_step(steps.llama_loss(graphdef), mesh, "fsdp", ps, bs)(
      sharded, part.place(dp_batch, bs))
  hdp_graphdef, _ = nnx.split(init_model(cfg.replace(attention_impl="hdp")))
  step = hdp.make_hdp_grad_step(steps.llama_loss(hdp_graphdef), mesh, "fsdp", ps, plan)
  loss, aux, grads = step(sharded, hdp.pack(sequences, plan))
  np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-5)
  assert float(aux["tokens"]) == sum(lengths)
  for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5 * float(np.max(np.abs(w))))
  with pytest.raises(ShapeError, match="the HDP plan has 4 ranks but the batch is split over 8"):
    hdp.make_hdp_grad_step(steps.llama_loss(hdp_graphdef), mesh, "fsdp", ps, hdp.schedule(lengths[:4], 4, 128))
