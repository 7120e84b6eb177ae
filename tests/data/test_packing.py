"""Packing: attention with segment ids equals attention over each document alone; positions restart; the packed
stream reconstructs the documents; the iterator state restores exactly."""

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lcjax.data.packing import PackIterDataset, pack_row, unpack_row
from lcjax.models.build import init_model
from lcjax.models.llama import forward
from lcjax.ops import MaskSpec, attention
from tests.tiny import TINY


def _docs(lengths, seed=0):
  rng = np.random.default_rng(seed)
  return [{"tokens": rng.integers(3, TINY.vocab_size, n).astype(np.int32)} for n in lengths]


def test_pack_row_fields():
  docs = _docs([5, 3])
  row = pack_row([(d["tokens"], np.ones(len(d["tokens"]), np.float32)) for d in docs], 10)
  np.testing.assert_array_equal(row["segment_ids"], [1, 1, 1, 1, 1, 2, 2, 2, 0, 0])
  np.testing.assert_array_equal(row["positions"], [0, 1, 2, 3, 4, 0, 1, 2, 0, 0])
  np.testing.assert_array_equal(row["loss_mask"], [1, 1, 1, 1, 0, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(row["targets"][:4], docs[0]["tokens"][1:])


def test_segment_attention_equals_each_document_alone():
  rng = np.random.default_rng(1)
  lengths, n, h = [7, 5, 4], 2, 8
  t = sum(lengths)
  q, k, v = (jnp.asarray(rng.standard_normal((1, t, n, h)), jnp.float32) for _ in range(3))
  seg = jnp.asarray(np.repeat(np.arange(1, 4), lengths)[None], jnp.int32)
  pos = jnp.asarray(np.concatenate([np.arange(x) for x in lengths])[None], jnp.int32)
  mask = MaskSpec(causal=True, q_segment_ids=seg, kv_segment_ids=seg, q_positions=pos, kv_positions=pos)

  def packed(q, k, v):
    return attention(q, k, v, mask=mask, impl="xla_blockwise")

  def alone(q, k, v):
    outs, start = [], 0
    for x in lengths:
      sl = slice(start, start + x)
      outs.append(attention(q[:, sl], k[:, sl], v[:, sl], impl="reference"))
      start += x
    return jnp.concatenate(outs, axis=1)

  np.testing.assert_allclose(jax.jit(packed)(q, k, v), jax.jit(alone)(q, k, v), rtol=1e-5, atol=1e-6)
  loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))  # noqa: E731
  g_packed = jax.jit(jax.grad(loss(packed), argnums=(0, 1, 2)))(q, k, v)
  g_alone = jax.jit(jax.grad(loss(alone), argnums=(0, 1, 2)))(q, k, v)
  for a, b in zip(g_packed, g_alone):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_packed_model_logits_equal_each_document_alone():
  graphdef, params = nnx.split(init_model(TINY))
  run = jax.jit(lambda p, t, pos, seg: forward(graphdef, p, t, pos, segment_ids=seg)[0])
  docs = _docs([9, 6, 12], seed=2)
  row = pack_row([(d["tokens"], np.ones(len(d["tokens"]), np.float32)) for d in docs], 32)
  logits = run(params, row["tokens"][None], row["positions"][None], row["segment_ids"][None])
  start = 0
  for d in docs:
    n = len(d["tokens"])
    alone = run(params, d["tokens"][None], np.arange(n)[None], None)
    np.testing.assert_allclose(logits[0, start:start + len(d["tokens"])], alone[0], rtol=2e-5, atol=2e-5)
    start += len(d["tokens"])


@pytest.mark.parametrize("split_docs", [True, False])
def test_packed_stream_reconstructs_documents(split_docs):
  docs = _docs([5, 30, 2, 17, 9, 40, 3], seed=3)
  rows = list(PackIterDataset(grain.MapDataset.source(docs).to_iter_dataset(), 16, split_docs))
  pieces = [p for r in rows for p in unpack_row(r)]
  assert all(len(r["tokens"]) == 16 for r in rows)
  np.testing.assert_array_equal(np.concatenate(pieces), np.concatenate([d["tokens"] for d in docs]))
  lengths = [len(p) for p in pieces]
  if not split_docs:  # documents that fit a row stay whole; only longer ones (17, 30, 40) are cut into <= 16
    assert {5, 2, 9, 3} <= set(lengths) and 17 not in lengths
  else:
    assert sum(r["segment_ids"].min() == 0 for r in rows) <= 1  # only the last row has padding


def test_pack_iterator_state_restores_mid_document():
  docs = _docs([50, 7, 33, 21, 64, 5], seed=4)
  ds = PackIterDataset(grain.MapDataset.source(docs).repeat(None).to_iter_dataset(), 16)
  it = iter(ds)
  for _ in range(4):
    next(it)
  state = it.get_state()
  assert state["offset"] > 0  # stopped inside a document
  want = [next(it) for _ in range(6)]
  fresh = iter(ds)
  fresh.set_state(state)
  for w in want:
    got = next(fresh)
    for key in w:
      np.testing.assert_array_equal(got[key], w[key])
