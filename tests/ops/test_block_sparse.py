"""`ops.block_sparse_attention`: impls agree, full selection equals dense decode, errors name the bad value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import ImplUnavailableError, ShapeError
from lcjax.ops import BLOCK_SPARSE_IMPLS, MaskSpec, block_sparse_attention, decode

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

