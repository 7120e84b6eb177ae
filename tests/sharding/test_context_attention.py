"""Context-parallel attention (`ring`, `allgather_kv`) on 8 CPU devices equals `reference`, forward and grads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.config import MeshConfig
from lcjax.errors import ShapeError, ShardingError
from lcjax.ops import ATTENTION_IMPLS, MaskSpec, attention
from lcjax.sharding.layout import inverse_permutation, layout_permutation, to_layout
from lcjax.sharding.mesh import create_mesh
from lcjax.sharding.partition import use_sharding

B, T, N, K, H = 2, 64, 4, 2, 8


@pytest.fixture(scope="module")
def qkv():
  ks = jax.random.split(jax.random.PRNGKey(0), 3)
  return (jax.random.normal(ks[0], (B, T, N, H)), jax.random.normal(ks[1], (B, T, K, H)),
          jax.random.normal(ks[2], (B, T, K, H)))


@pytest.fixture(scope="module")
def meshes():
  return {"cp4": create_mesh(MeshConfig(fsdp=2, context=4)),
          "cp4_tp2": create_mesh(MeshConfig(fsdp=1, context=4, tensor=2)),
          "cp8": create_mesh(MeshConfig(fsdp=1, context=8))}


def _documents():
  """Uneven documents: row 0 has lengths 10, 27, 27; row 1 has 50, 14."""
  seg = np.zeros((B, T), np.int32)
  seg[0, 10:37], seg[0, 37:] = 1, 2
  seg[1, 50:] = 1
  return jnp.asarray(seg)


def _value_and_grads(impl, q, k, v, mask, **options):
  def loss(q, k, v):
    out = attention(q, k, v, mask=mask, impl=impl, **options)
    return jnp.sum(out * jnp.cos(out)), out

  (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(q, k, v)
  return out, grads


def _check(got, want):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-5)


CASES = [  # (impl, mesh, mask kind, token layout handled by the impl)
    ("ring", "cp4", "causal", "contiguous"),
    ("ring", "cp4", "documents", "zigzag"),
    ("ring", "cp8", "documents", "striped"),
    ("ring", "cp4_tp2", "window", "zigzag"),
    ("allgather_kv", "cp4", "causal", "zigzag"),
    ("allgather_kv", "cp4_tp2", "documents", "contiguous"),
]


@pytest.mark.parametrize("impl,mesh_name,mask_kind,layout", CASES)
def test_equals_reference_fwd_and_grads(qkv, meshes, impl, mesh_name, mask_kind, layout):
  q, k, v = qkv
  seg = _documents()
  mask = {"causal": MaskSpec(causal=True),
          "documents": MaskSpec(causal=True, q_segment_ids=seg, kv_segment_ids=seg),
          "window": MaskSpec(causal=True, window=12, sink=2)}[mask_kind]
  want = jax.jit(lambda q, k, v: _value_and_grads("reference", q, k, v, mask))(q, k, v)
  with use_sharding(meshes[mesh_name], "fsdp_cp" if mesh_name != "cp4_tp2" else "fsdp_tp"):
    # fsdp_tp has no context rule for activations; the impls shard tokens over `context` themselves.
    got = jax.jit(lambda q, k, v: _value_and_grads(impl, q, k, v, mask, layout=layout))(q, k, v)
  _check(got, want)


def test_pre_laid_out_tokens_with_positions(qkv, meshes):
  """The model path: tokens are put in zigzag order once (positions carried), the impl sees them as given."""
  q, k, v = qkv
  seg = np.asarray(_documents())
  perm = layout_permutation(T, 4, "zigzag")
  pos = np.broadcast_to(np.arange(T, dtype=np.int32), (B, T))
  laid = to_layout({"segment_ids": seg}, 4, "zigzag")
  np.testing.assert_array_equal(laid["positions"], pos[:, perm])
  mask = MaskSpec(causal=True, q_segment_ids=jnp.asarray(seg), kv_segment_ids=jnp.asarray(seg))
  want_out, _ = _value_and_grads("reference", q, k, v, mask)
  lmask = MaskSpec(causal=True, q_segment_ids=jnp.asarray(laid["segment_ids"]),
                   kv_segment_ids=jnp.asarray(laid["segment_ids"]), q_positions=jnp.asarray(laid["positions"]),
                   kv_positions=jnp.asarray(laid["positions"]))
  with use_sharding(meshes["cp4"], "fsdp_cp"):
    out = jax.jit(lambda q, k, v: attention(q, k, v, mask=lmask, impl="ring"))(q[:, perm], k[:, perm], v[:, perm])
  np.testing.assert_allclose(np.asarray(out)[:, inverse_permutation(perm)], want_out, rtol=2e-5, atol=2e-5)


def test_layouts_balance_causal_work():
  """Zigzag gives every rank the same number of visible (query, key) pairs; contiguous does not."""
  def pairs(layout, ranks=4, t=64):
    pos = np.arange(t)[layout_permutation(t, ranks, layout)].reshape(ranks, -1)
    return [int(np.sum(p[:, None] >= np.arange(t)[None])) for p in pos]

  assert len(set(pairs("zigzag"))) == 1
  contiguous = pairs("contiguous")
  assert max(contiguous) / min(contiguous) > 5


def test_registered_and_errors(qkv, meshes):
  q, k, v = qkv
  assert {"ring", "allgather_kv", "hdp"} <= set(ATTENTION_IMPLS.names())
  for impl in ("ring", "allgather_kv", "hdp"):
    with pytest.raises(ShardingError, match=f"attention impl '{impl}' needs an active device mesh"):
      attention(q, k, v, impl=impl)
  with use_sharding(meshes["cp8"], "fsdp_cp"):
    with pytest.raises(ShapeError, match="T=60 tokens does not fit the ring of 8 devices on mesh axis context "
                                         "evenly; pad T to a multiple of 8"):
      attention(q[:, :60], k[:, :60], v[:, :60], impl="ring")
    with pytest.raises(ShapeError, match="does not split evenly over 8 ranks in the zigzag layout: pad it to a "
                                         "multiple of 16"):
      attention(q[:, :56], k[:, :56], v[:, :56], impl="ring", layout="zigzag")
    with pytest.raises(ShapeError, match="q has T=32 but k has S=64"):
      attention(q[:, :32], k, v, impl="allgather_kv")
    with pytest.raises(ShardingError, match="needs the HDP ring layout"):
      attention(q, k, v, impl="hdp")
