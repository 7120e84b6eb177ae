"""The Pallas impls through `ops.attention` / `ops.decode`: same numbers as reference, clear errors on CPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import ImplUnavailableError, ShapeError
from lcjax.ops import ATTENTION_IMPLS, DECODE_IMPLS, MaskSpec, attention, decode

B, T, N, K, H = 1, 20, 4, 2, 64


def _qkv(s=T):
  ks = jax.random.split(jax.random.PRNGKey(0), 3)
  return (jax.random.normal(ks[0], (B, T, N, H)), jax.random.normal(ks[1], (B, s, K, H)),
          jax.random.normal(ks[2], (B, s, K, H)))


@pytest.mark.parametrize("impl,blocks", [("pallas_triton", dict(block_q=16, block_k=16)),
                                         ("pallas_tpu", dict(block_q=16, block_k=128))])
def test_flash_impls_match_reference_with_grads(impl, blocks):
  q, k, v = _qkv()
  mask = MaskSpec(window=11, sink=1)

  def run(impl, **options):
    fn = lambda q, k, v: attention(q, k, v, mask=mask, impl=impl, softcap=20.0, **options)  # noqa: E731
    grads = jax.grad(lambda *a: jnp.sum(fn(*a) ** 2), argnums=(0, 1, 2))
    return jax.jit(lambda *a: (fn(*a), grads(*a)))(q, k, v)

  for got, want in zip(jax.tree.leaves(run(impl, interpret=True, **blocks)), jax.tree.leaves(run("reference"))):
    np.testing.assert_allclose(got, want, atol=5e-5, rtol=5e-5)


@pytest.mark.parametrize("impl", ["pallas_triton", "pallas_tpu"])
def test_decode_impls_match_reference(impl):
  q, k, v = _qkv(s=40)
  q = q[:, :2]
  kh, vh = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)
  mask = MaskSpec(q_positions=jnp.asarray([[30, 31]]))
  got = decode(q, kh, vh, mask=mask, impl=impl, interpret=True, block_size=16, num_splits=2)
  np.testing.assert_allclose(got, decode(q, kh, vh, mask=mask, impl="reference"), atol=2e-5, rtol=2e-5)


def test_kernels_on_cpu_need_interpret_and_say_what_runs():
  q, k, v = _qkv()
  for impl in ("pallas_triton", "pallas_tpu", "pallas_mosaic_gpu"):
    assert impl in ATTENTION_IMPLS
    with pytest.raises(ImplUnavailableError, match=r"interpret=True.*xla_blockwise"):
      attention(q, k, v, impl=impl)
  with pytest.raises(ImplUnavailableError, match="not on cpu"):
    decode(q, jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2), mask=MaskSpec(), impl="pallas_tpu")
  assert {"pallas_triton", "pallas_tpu"} <= set(DECODE_IMPLS.names())


def test_pallas_decode_rejects_document_masks():
  q, k, v = _qkv()
  seg = jnp.zeros((B, T), jnp.int32)
  with pytest.raises(ShapeError, match="segment ids"):
    decode(q, jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2), mask=MaskSpec(q_segment_ids=seg, kv_segment_ids=seg),
           impl="pallas_triton", interpret=True)


def test_pallas_kernels_reject_longgen_sparse_blocks():
  """LongGen's block pattern is not in the kernels' liveness table: they raise instead of ignoring it."""
  q, k, v = _qkv()
  sparse = MaskSpec(sparse_blocks=(4, 1, 2))
  with pytest.raises(ShapeError, match="sparse_blocks.*xla_blockwise"):
    attention(q, k, v, mask=sparse, impl="pallas_triton", interpret=True)
  with pytest.raises(ShapeError, match="sparse_blocks"):
    decode(q[:, :1], jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2), mask=sparse, impl="pallas_triton", interpret=True)
