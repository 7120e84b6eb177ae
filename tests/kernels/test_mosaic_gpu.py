"""Mosaic GPU (Hopper) flash forward: GPU interpreter under an abstract H100 vs the reference, lowering for cuda."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.ops import MaskSpec, attention
from pallas_kernels.flash_attention import flash_attention_forward
from tests.kernels.cases import assert_close, gpu_device, qkv, segments


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


def test_mosaic_impl_grads_through_ops_attention():
  """`pallas_mosaic_gpu`: kernel forward, XLA blockwise backward; equals the reference in value and gradient."""
  q, kk, v = qkv(1, 64, 64, 2, 2, 64, jnp.bfloat16, seed=2)

  def run(impl, **options):
    fn = lambda q, k, v: attention(q, k, v, mask=MaskSpec(), impl=impl, **options)  # noqa: E731
    loss = lambda *a: jnp.sum(fn(*a).astype(jnp.float32) ** 2)  # noqa: E731
    return fn(q, kk, v), jax.grad(loss, argnums=(0, 1, 2))(q, kk, v)

  with gpu_device():
    out, grads = run("pallas_mosaic_gpu", interpret=True, block_q=64, block_k=64)
  want, want_grads = run("reference")
  assert_close(out, want, jnp.bfloat16)
  for g, w in zip(grads, want_grads):  # bf16 gradients of a squared loss: a few ulps of |g| ~ 2
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32), atol=6e-2, rtol=3e-2)


def test_mosaic_lowers_for_cuda_and_rejects_fp32():
  q = jnp.zeros((2, 512, 8, 128), jnp.bfloat16)
  kv = jnp.zeros((2, 512, 2, 128), jnp.bfloat16)
  fwd = lambda q, k, v: flash_attention_forward(q, k, v, target="mosaic_gpu", window=256)  # noqa: E731
  text = jax.jit(fwd).trace(q, kv, kv).lower(lowering_platforms=("cuda",)).as_text()
  assert text.count("custom_call @mosaic_gpu") == 1
  with pytest.raises(ValueError, match="f16/bf16"):
    jax.jit(fwd).trace(q.astype(jnp.float32), kv.astype(jnp.float32), kv.astype(jnp.float32))
