"""Mosaic GPU (Hopper) kernels: flash attention fwd+bwd and the gather-block (decode / paged / block-sparse) kernel,
in the GPU interpreter under an abstract H100 vs references, and lowered for cuda."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.ops import MaskSpec, attention
from lcjax.ops.decode import decode_reference
from pallas_kernels.block_sparse import block_sparse_attention
from pallas_kernels.decode_attention import decode_attention, paged_decode_attention
from pallas_kernels.flash_attention import flash_attention, flash_attention_forward
from tests.kernels.cases import assert_close, dense_block_sparse, gpu_device, qkv, segments


@pytest.mark.parametrize("t,s,n,k,h,mask,softcap", [
    (64, 128, 2, 1, 64, dict(window=50, sink=3), 20.0),  # two pipelined key tiles, GQA, chunk over longer keys
    (50, 50, 1, 1, 128, dict(segments=True), None),      # odd lengths (padded), documents, H = 128
])
def test_mosaic_forward_matches_reference(t, s, n, k, h, mask, softcap):
  q, kk, v = qkv(1, t, s, n, k, h, jnp.bfloat16)
  mask = dict(mask)
  if mask.pop("segments", False):
    mask.update(q_segment_ids=segments(1, t, 3), kv_segment_ids=segments(1, s, 3))
  with gpu_device():
    got = flash_attention_forward(q, kk, v, target="mosaic_gpu", interpret=True, block_q=64, block_k=64,
                                  softcap=softcap, **mask)
  assert_close(got, flash_attention_forward(q, kk, v, target="reference", softcap=softcap, **mask), jnp.bfloat16)


@pytest.mark.parametrize("mask,softcap", [(MaskSpec(window=50, sink=3), 20.0), (MaskSpec(causal=False), None)])
def test_mosaic_kernel_grads_through_ops_attention(mask, softcap):
  """`pallas_mosaic_gpu` through `ops.attention`: kernel forward and dQ, dK/dV kernels (GQA 2:1, two key and two
  query tiles) equal the reference in value and gradient."""
  q, kk, v = qkv(1, 128, 128, 2, 1, 64, jnp.bfloat16, seed=2)

  def run(impl, **options):
    fn = lambda q, k, v: attention(q, k, v, mask=mask, impl=impl, softcap=softcap, **options)  # noqa: E731
    loss = lambda *a: jnp.sum(fn(*a).astype(jnp.float32) ** 2)  # noqa: E731
    return jax.jit(lambda *a: (fn(*a), jax.grad(loss, argnums=(0, 1, 2))(*a)))(q, kk, v)

  with gpu_device():
    out, grads = run("pallas_mosaic_gpu", interpret=True, block_q=64, block_k=64)
  want, want_grads = run("reference")
  assert_close(out, want, jnp.bfloat16)
  for g, w in zip(grads, want_grads):  # bf16 gradients (|g| up to ~10): bf16 P / dS operands, per-head dK rounding
    scale = float(jnp.max(jnp.abs(w.astype(jnp.float32))))
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32), atol=2e-2 * scale, rtol=3e-2)


def test_mosaic_lowers_for_cuda_and_rejects_fp32():
  q = jnp.zeros((2, 512, 8, 128), jnp.bfloat16)
  kv = jnp.zeros((2, 512, 2, 128), jnp.bfloat16)
  fwd = lambda q, k, v: flash_attention_forward(q, k, v, target="mosaic_gpu", window=256)  # noqa: E731
  text = jax.jit(fwd).trace(q, kv, kv).lower(lowering_platforms=("cuda",)).as_text()
  assert text.count("custom_call @mosaic_gpu") == 1
  grad = jax.grad(lambda *a: jnp.sum(flash_attention(*a, target="mosaic_gpu", softcap=30.0).astype(jnp.float32)),
                  argnums=(0, 1, 2))
  assert jax.jit(grad).trace(q, kv, kv).lower(lowering_platforms=("cuda",)).as_text().count(
      "custom_call @mosaic_gpu") == 3  # forward, dQ, dK/dV
  with pytest.raises(ValueError, match="f16/bf16"):
    jax.jit(fwd).trace(q.astype(jnp.float32), kv.astype(jnp.float32), kv.astype(jnp.float32))


@pytest.mark.slow
def test_mosaic_gather_kernels_match_references():
  """Decode (split-K, window + sinks), paged decode (shared pool) and block-sparse on the Mosaic GPU gather kernel."""
  b, n, k, h, c = 2, 4, 2, 64, 64
  q, cache, v_cache = qkv(b, 2, 200, n, k, h, jnp.bfloat16, seed=8, heads_major_cache=True)
  q_pos = jnp.asarray([[150, 151], [60, 61]], jnp.int32)
  pages = jax.random.normal(jax.random.PRNGKey(9), (2, k, 6, c, h), jnp.bfloat16)
  table = jnp.asarray([[4, 0, 2], [1, 5, 3]], jnp.int32)
  lengths = jnp.asarray([170, 70], jnp.int32)
  ids, counts = jnp.asarray([[[2, 0, 1], [1, 2, 0]], [[0, 3, 1], [1, 0, 2]]], jnp.int32), jnp.asarray([[3, 2], [1, 2]])
  runs = {
      "decode": lambda target, **o: decode_attention(q, cache, v_cache, target=target, q_positions=q_pos, window=90,
                                                     sink=4, block_size=c, **o),
      "paged": lambda target, **o: paged_decode_attention(q[:, :1], pages[0], pages[1], table, lengths,
                                                          target=target, **o),
      "sparse": lambda target, **o: block_sparse_attention(q, cache, v_cache, ids, counts, block_size=c,
                                                           target=target, q_positions=q_pos, softcap=5.0, **o),
  }
  oracle = {"decode": lambda: decode_reference(q, cache, v_cache, MaskSpec(window=90, sink=4, q_positions=q_pos),
                                               scale=h ** -0.5)}
  for name, run in runs.items():
    with gpu_device():
      got = jax.jit(lambda: run("mosaic_gpu", num_splits=2, interpret=True))()
    want = jax.jit(oracle[name] if name in oracle else lambda: run("reference"))()
    assert_close(got, want, jnp.bfloat16)


def test_mosaic_block_sparse_lse_matches_dense():
  """return_lse in the GPU interpreter: split-K merged lse, an empty kv head and a query before its blocks."""
  q, cache, v_cache = qkv(2, 2, 200, 4, 2, 64, jnp.bfloat16, seed=8, heads_major_cache=True)
  ids, counts = jnp.asarray([[[2, 0, 1], [1, 2, 0]], [[0, 3, 1], [1, 0, 2]]], jnp.int32), jnp.asarray([[3, 0], [1, 2]])
  kw = dict(block_size=64, q_positions=jnp.asarray([[150, 151], [30, 61]]), kv_lengths=jnp.asarray([170, 70]),
            softcap=5.0)
  with gpu_device():
    out, lse = jax.jit(lambda: block_sparse_attention(q, cache, v_cache, ids, counts, target="mosaic_gpu",
                                                      num_splits=2, interpret=True, return_lse=True, **kw))()
  f32 = lambda x: x.astype(jnp.float32)  # noqa: E731
  want_out, want_lse = dense_block_sparse(f32(q), f32(cache), f32(v_cache), ids, counts, **kw)
  assert np.isneginf(want_lse).sum() == 4  # batch 0's kv head 1 selects nothing
  np.testing.assert_array_equal(np.isneginf(lse), np.isneginf(want_lse))
  np.testing.assert_allclose(lse, want_lse, atol=1e-5, rtol=1e-5)  # fp32 scores of the bf16 inputs
  assert_close(out, want_out, jnp.bfloat16)  # P is rounded to bf16 for the P V wgmma
  assert not np.asarray(f32(out))[np.isneginf(want_lse)].any()


def test_mosaic_gather_kernel_lowers_for_cuda():
  q = jnp.zeros((2, 1, 8, 128), jnp.bfloat16)
  cache = jnp.zeros((2, 2, 4096, 128), jnp.bfloat16)
  ids, counts = jnp.zeros((2, 2, 16), jnp.int32), jnp.full((2, 2), 16, jnp.int32)
  sparse = lambda q, c: block_sparse_attention(q, c, c, ids, counts, block_size=128, target="mosaic_gpu")  # noqa
  dense = lambda q, c: decode_attention(q, c, c, target="mosaic_gpu", kv_lengths=jnp.asarray([4000, 9]))  # noqa
  sparse_lse = lambda q, c: block_sparse_attention(q, c, c, ids, counts, block_size=128, target="mosaic_gpu",  # noqa
                                                   kv_lengths=jnp.asarray([4000, 9]), num_splits=4, return_lse=True)
  for fn in (sparse, dense, sparse_lse):
    assert jax.jit(fn).trace(q, cache).lower(lowering_platforms=("cuda",)).as_text().count(
        "custom_call @mosaic_gpu") == 1
  out, lse = jax.eval_shape(sparse_lse, q, cache)
  assert (out.shape, out.dtype, lse.shape, lse.dtype) == (q.shape, q.dtype, q.shape[:3], jnp.float32)
