"""Hybrid tree attention (LongSpec) == dense masked attention over [prefix | tree]; the tree kernels interpreted
and lowered."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import ShapeError
from lcjax.ops.tree_attention import hybrid_tree_attention, merge_lse, tree_part
from pallas_kernels.tree_attention import tree_attention
from pallas_kernels.tree_attention.reference import tree_reference
from tests.kernels.cases import gpu_device, no_device

PARENTS = [-1, 0, 0, 1, 1, 2, 3]  # a 7-node tree (root, two children, ...)


def _tree_mask(parents, b):
  t = len(parents)
  m = np.eye(t, dtype=bool)
  for i in range(1, t):
    m[i] |= m[parents[i]]
  return jnp.asarray(np.broadcast_to(m, (b, t, t)))


def _dense_oracle(q, kc, vc, lengths, kt, vt, mask):
  """Softmax over [cache | tree] with mask [pos < length | tree_mask], computed densely in numpy (float64)."""
  q, kc, vc, kt, vt = (np.asarray(x, np.float64) for x in (q, kc, vc, kt, vt))
  b, t, n, h = q.shape
  kh, s = kc.shape[1], kc.shape[2]
  g = n // kh
  k_all = np.concatenate([kc, np.swapaxes(kt, 1, 2)], axis=2)
  v_all = np.concatenate([vc, np.swapaxes(vt, 1, 2)], axis=2)
  vis = np.concatenate([np.broadcast_to(np.arange(s)[None, None] < np.asarray(lengths)[:, None, None], (b, t, s)),
                        np.asarray(mask)], axis=2)
  out = np.zeros((b, t, n, h))
  for head in range(n):
    sc = np.einsum("bth,bsh->bts", q[:, :, head], k_all[:, head // g]) / np.sqrt(h)
    sc = np.where(vis, sc, -np.inf)
    p = np.exp(sc - sc.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out[:, :, head] = np.einsum("bts,bsh->bth", p, v_all[:, head // g])
  return out


@pytest.mark.parametrize("n,k,parents", [(4, 2, PARENTS), (2, 1, [-1])])  # GQA tree; one-node tree
def test_hybrid_equals_dense_masked_attention(n, k, parents):
  b, s, h, t = 2, 32, 8, len(parents)
  ks = jax.random.split(jax.random.PRNGKey(0), 5)
  q = jax.random.normal(ks[0], (b, t, n, h))
  kc, vc = (jax.random.normal(x, (b, k, s, h)) for x in ks[1:3])
  kt, vt = (jax.random.normal(x, (b, t, k, h)) for x in ks[3:5])
  lengths = jnp.asarray([20, 5])
  mask = _tree_mask(parents, b)
  got = jax.jit(hybrid_tree_attention)(q, kc, vc, lengths, kt, vt, mask)
  np.testing.assert_allclose(np.asarray(got), _dense_oracle(q, kc, vc, lengths, kt, vt, mask), atol=1e-5)


def test_empty_tree_and_empty_prefix():
  b, s, n, k, h = 1, 16, 4, 2, 8
  ks = jax.random.split(jax.random.PRNGKey(1), 3)
  q = jax.random.normal(ks[0], (b, 3, n, h))
  kc, vc = (jax.random.normal(x, (b, k, s, h)) for x in ks[1:3])
  empty = jnp.zeros((b, 0, k, h))
  hybrid = jax.jit(hybrid_tree_attention)
  got = hybrid(q, kc, vc, jnp.asarray([9]), empty, empty, jnp.zeros((b, 3, 0), bool))
  np.testing.assert_allclose(np.asarray(got), _dense_oracle(q, kc, vc, [9], empty, empty, np.zeros((b, 3, 0), bool)),
                             atol=1e-5)
  # no prefix at all: the tree part alone (lse_p = -inf gives weight 0)
  kt = jax.random.normal(ks[1], (b, 3, k, h))
  mask = _tree_mask([-1, 0, 1], b)
  got = hybrid(q, kc, vc, jnp.asarray([0]), kt, kt, mask)
  np.testing.assert_allclose(np.asarray(got), np.asarray(jax.jit(tree_part)(q, kt, kt, mask)[0]), atol=1e-6)


def test_merge_lse_is_sigmoid_weighting():
  o1, o2 = jnp.ones((1, 2)), jnp.zeros((1, 2))
  out, lse = merge_lse(o1, jnp.asarray([jnp.log(3.0)]), o2, jnp.asarray([0.0]))
  np.testing.assert_allclose(np.asarray(out), [[0.75, 0.75]], rtol=1e-6)  # weights 3 : 1
  np.testing.assert_allclose(np.asarray(lse), [np.log(4.0)], rtol=1e-6)


def test_bad_tree_mask_shape_raises():
  q = jnp.zeros((1, 3, 2, 8))
  with pytest.raises(ShapeError, match="tree_mask"):
    tree_part(q, jnp.zeros((1, 3, 1, 8)), jnp.zeros((1, 3, 1, 8)), jnp.ones((1, 3, 4), bool))


@pytest.mark.parametrize("target", ["triton", "tpu"])
def test_tree_kernel_interpreted_matches_reference(target):
  b, n, k, h = 1, 4, 2, 16
  t = len(PARENTS)
  ks = jax.random.split(jax.random.PRNGKey(2), 3)
  q = jax.random.normal(ks[0], (b, t, n, h))
  kt, vt = (jax.random.normal(x, (b, t, k, h)) for x in ks[1:])
  mask = _tree_mask(PARENTS, b)
  want = tree_reference(q, kt, vt, mask, scale=0.25, softcap=5.0)
  with gpu_device() if target == "triton" else no_device():
    got = tree_attention(q, kt, vt, mask, target=target, scale=0.25, softcap=5.0, interpret=True)
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=2e-5)


@pytest.mark.parametrize("target,platform,call", [("triton", "cuda", "__gpu$xla.gpu.triton"),
                                                  ("tpu", "tpu", "tpu_custom_call")])
def test_tree_kernel_lowers(target, platform, call):
  b, t, n, k, h = 2, 69, 8, 2, 128  # LongSpec's [4, 16, 16, 16, 16] tree: 69 nodes
  q = jnp.zeros((b, t, n, h), jnp.bfloat16)
  kv = jnp.zeros((b, t, k, h), jnp.bfloat16)
  mask = jnp.ones((b, t, t), bool)
  fn = lambda q, kv: tree_attention(q, kv, kv, mask, target=target)  # noqa: E731
  with gpu_device() if target == "triton" else no_device():
    text = jax.jit(fn).trace(q, kv).lower(lowering_platforms=(platform,)).as_text()
  assert text.count(f"custom_call @{call}") == 1
