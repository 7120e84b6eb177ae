"""`ops.block_sparse_attention`: impls agree, full selection equals dense decode, return_lse equals a dense masked
softmax (out, lse, grads), errors name the bad value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import ImplUnavailableError, ShapeError
from lcjax.ops import BLOCK_SPARSE_IMPLS, MaskSpec, block_sparse_attention, decode
from pallas_kernels.tpu_interpret import reset_on_failure
from tests.kernels.cases import dense_block_sparse

B, T, N, K, H, S, C = 2, 2, 4, 2, 16, 40, 8


def _inputs(seed=0):
  ks = jax.random.split(jax.random.PRNGKey(seed), 3)
  q = jax.random.normal(ks[0], (B, T, N, H))
  k, v = (jax.random.normal(x, (B, K, S, H)) for x in ks[1:])
  rng = np.random.default_rng(seed)
  ids = jnp.asarray([[rng.permutation(S // C)[:4] for _ in range(K)] for _ in range(B)], jnp.int32)
  return q, k, v, ids, jnp.asarray([[4, 2], [1, 3]], jnp.int32)


@pytest.mark.slow
@pytest.mark.parametrize("positions", [False, True])
def test_reference_and_xla_agree_with_grads(positions):
  q, k, v, ids, counts = _inputs()
  kw = dict(block_size=C, softcap=3.0, kv_lengths=jnp.asarray([37, 22]))
  if positions:
    kw["q_positions"] = jnp.asarray([[35, 36], [20, 21]])

  def run(impl):
    fn = lambda q, k, v: block_sparse_attention(q, k, v, ids, counts, impl=impl, **kw)  # noqa: E731
    grads = jax.grad(lambda *a: jnp.sum(jnp.sin(fn(*a))), argnums=(0, 1, 2))
    return jax.jit(lambda *a: (fn(*a), grads(*a)))(q, k, v)

  for got, want in zip(jax.tree.leaves(run("xla")), jax.tree.leaves(run("reference"))):
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["reference", "xla", "pallas_triton", "pallas_tpu"])
def test_full_selection_equals_dense_decode(impl):
  """Selecting every block (in any order) is dense attention: the method with the full budget."""
  q, k, v, _, _ = _inputs(1)
  nb = S // C
  ids = jnp.asarray(np.stack([np.stack([np.random.default_rng(i + j).permutation(nb) for j in range(K)])
                              for i in range(B)]), jnp.int32)
  q_pos = jnp.asarray([[38, 39], [12, 13]])
  options = dict(interpret=True, num_splits=2) if impl.startswith("pallas") else {}
  got = jax.jit(lambda q, k, v: block_sparse_attention(q, k, v, ids, jnp.full((B, K), nb, jnp.int32), block_size=C,
                                                       impl=impl, q_positions=q_pos, **options))(q, k, v)
  want = jax.jit(lambda q, k, v: decode(q, k, v, mask=MaskSpec(q_positions=q_pos), impl="reference"))(q, k, v)
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=2e-5)


def test_auto_and_unavailable_impls():
  q, k, v, ids, counts = _inputs()
  out = block_sparse_attention(q, k, v, ids, counts, block_size=C, interpret=True)  # auto on cpu: reference
  np.testing.assert_allclose(out, block_sparse_attention(q, k, v, ids, counts, block_size=C, impl="reference"))
  with pytest.raises(ImplUnavailableError, match="interpret=True"):
    block_sparse_attention(q, k, v, ids, counts, block_size=C, impl="pallas_tpu")
  assert {"reference", "xla", "pallas_triton", "pallas_tpu"} <= set(BLOCK_SPARSE_IMPLS.names())


def test_bad_inputs_raise_shape_errors():
  q, k, v, ids, counts = _inputs()
  with pytest.raises(ShapeError, match="block_counts must be"):
    block_sparse_attention(q, k, v, ids, counts[:1], block_size=C)
  with pytest.raises(ShapeError, match="block_indices must be"):
    block_sparse_attention(q, k, v, ids[0], counts, block_size=C)
  with pytest.raises(ShapeError, match="integer"):
    block_sparse_attention(q, k, v, ids.astype(jnp.float32), counts, block_size=C)
  with pytest.raises(ShapeError, match="block_size"):
    block_sparse_attention(q, k, v, ids, counts, block_size=0)
  with pytest.raises(ShapeError, match="heads-major"):
    block_sparse_attention(q, k[0], v[0], ids, counts, block_size=C)



def _lse_case(positions):
  """Inputs where (b=0, kv head 1) selects nothing and b=1's first query sees no key (its blocks are later)."""
  q, k, v, _, _ = _inputs(2)
  ids = jnp.asarray([[[0, 2, 3, 4], [1, 0, 0, 0]], [[4, 0, 0, 0], [3, 1, 2, 0]]], jnp.int32)
  counts = jnp.asarray([[4, 0], [1, 3]], jnp.int32)
  kw = dict(block_size=C, softcap=3.0, kv_lengths=jnp.asarray([37, 38]))
  if positions:
    kw["q_positions"] = jnp.asarray([[30, 36], [7, 33]])  # b=1, t=0 at 7: before every selected key of both heads
  return (q, k, v, ids, counts), kw


@pytest.mark.parametrize("impl,splits,positions", [
    ("reference", None, False), ("reference", None, True), ("xla", None, False), ("xla", None, True),
    ("pallas_triton", 3, False), ("pallas_triton", 3, True), ("pallas_tpu", 2, True)])
def test_return_lse_matches_dense_masked_softmax(impl, splits, positions):
  """out and lse (split-K merged) equal a dense masked softmax; rows that see no key give out 0 and lse -inf."""
  args, kw = _lse_case(positions)
  options = dict(interpret=True, num_splits=splits) if impl.startswith("pallas") else {}
  run = lambda lse: jax.jit(lambda *a: block_sparse_attention(*a, impl=impl, return_lse=lse, **kw, **options))  # noqa
  with reset_on_failure():
    (out, lse), plain = run(True)(*args), run(False)(*args)
  want_out, want_lse = dense_block_sparse(*args, **kw)
  assert lse.dtype == jnp.float32 and lse.shape == (B, T, N)
  empty = np.isneginf(np.asarray(want_lse))
  assert empty[0, :, 2:].all() and empty.sum() == (8 if positions else 4)  # the empty head (and query 7: 4 heads)
  np.testing.assert_array_equal(np.isneginf(lse), empty)
  np.testing.assert_allclose(lse, want_lse, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(out, want_out, atol=1e-5, rtol=1e-5)
  assert not np.asarray(out)[empty].any()
  np.testing.assert_array_equal(out, plain)  # the default call returns the same output alone


@pytest.mark.parametrize("impl", ["reference", "xla"])
def test_return_lse_grads_match_dense(impl):
  """The impls with the grad cap differentiate out and lse wrt q, k, v (zero through empty rows)."""
  args, kw = _lse_case(True)
  w = jax.random.normal(jax.random.PRNGKey(5), (B, T, N))

  def loss(fn):
    def f(q, k, v):
      out, lse = fn(q, k, v)
      return jnp.sum(jnp.sin(out)) + jnp.sum(jnp.where(jnp.isfinite(lse), lse * w, 0.0))
    return jax.jit(jax.grad(f, argnums=(0, 1, 2)))(*args[:3])

  got = loss(lambda q, k, v: block_sparse_attention(q, k, v, *args[3:], impl=impl, return_lse=True, **kw))
  want = loss(lambda q, k, v: dense_block_sparse(q, k, v, *args[3:], **kw))
  for g, x in zip(got, want):
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["pallas_triton", "pallas_tpu"])
def test_kernel_impls_refuse_gradients_clearly(impl):
  args, kw = _lse_case(False)
  fn = lambda q: block_sparse_attention(q, *args[1:], impl=impl, interpret=True, return_lse=True, **kw)[1]  # noqa
  with pytest.raises(ImplUnavailableError, match=f"'{impl}' has no gradient"):
    jax.grad(lambda q: jnp.sum(fn(q)))(args[0])  # raised while tracing the forward: no kernel runs


def test_auto_skips_kernels_the_call_does_not_fit():
  from lcjax.ops.block_sparse import auto_table

  # token-level fp32 selections (C = 1): no kernel fits, the reference gather comes first
  assert auto_table(jnp.float32, 64, 3, 1)["gpu"] == ("reference", "xla")
  assert auto_table(jnp.float32, 64, 3, 1)["tpu"] == ("reference", "xla")
  # pages of 64, bf16: Mosaic GPU first; fp32 pages: Triton
  assert auto_table(jnp.bfloat16, 64, 3, 64)["gpu"][0] == "pallas_mosaic_gpu"
  assert auto_table(jnp.float32, 64, 3, 64)["gpu"][0] == "pallas_triton"
  assert auto_table(jnp.float32, 64, 3, 8)["tpu"][0] == "pallas_tpu"
