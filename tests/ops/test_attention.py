"""xla_blockwise and the decode impls against the reference: forward and gradients over masks, GQA, odd lengths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import ImplUnavailableError, ShapeError, UnknownNameError
from lcjax.ops import DECODE_IMPLS, MaskSpec, attention, decode
from lcjax.ops.attention_blockwise import attention_blockwise
from lcjax.ops.attention_reference import attention_reference


def _qkv(b, t, s, n, k, h, seed=0, dtype=jnp.float32):
  ks = jax.random.split(jax.random.PRNGKey(seed), 3)
  return (jax.random.normal(ks[0], (b, t, n, h), dtype), jax.random.normal(ks[1], (b, s, k, h), dtype),
          jax.random.normal(ks[2], (b, s, k, h), dtype))


def _segments(b, length, seed):
  rng = np.random.default_rng(seed)
  cuts = np.sort(rng.choice(np.arange(1, length), size=(b, 2), replace=True), axis=1)
  pos = np.arange(length)[None]
  return jnp.asarray((pos >= cuts[:, :1]).astype(np.int32) + (pos >= cuts[:, 1:]).astype(np.int32))


MASKS = {
    "causal": lambda b, t: MaskSpec(),
    "full": lambda b, t: MaskSpec(causal=False),
    "window": lambda b, t: MaskSpec(window=7),
    "window_sink": lambda b, t: MaskSpec(window=5, sink=3),
    "segments": lambda b, t: MaskSpec(q_segment_ids=_segments(b, t, 1), kv_segment_ids=_segments(b, t, 1)),
    "segments_full": lambda b, t: MaskSpec(causal=False, q_segment_ids=_segments(b, t, 2),
                                           kv_segment_ids=_segments(b, t, 2)),
}


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("t,n,k,softcap", [(37, 6, 2, None), (64, 4, 4, None), (29, 8, 1, 5.0)])
def test_blockwise_matches_reference(mask_name, t, n, k, softcap):
  b, h = 2, 16
  q, kk, v = _qkv(b, t, t, n, k, h)
  mask = MASKS[mask_name](b, t)
  kwargs = dict(scale=0.3, softcap=softcap)

  def loss(fn):
    return lambda q, kk, v: jnp.sum(jnp.sin(fn(q, kk, v)) * jnp.arange(h))

  ref = lambda q, kk, v: attention_reference(q, kk, v, mask, **kwargs)  # noqa: E731
  blk = lambda q, kk, v: attention_blockwise(q, kk, v, mask, block_q=8, block_k=16, **kwargs)  # noqa: E731
  np.testing.assert_allclose(blk(q, kk, v), ref(q, kk, v), atol=1e-5, rtol=1e-5)
  g_ref = jax.grad(loss(ref), argnums=(0, 1, 2))(q, kk, v)
  g_blk = jax.grad(loss(blk), argnums=(0, 1, 2))(q, kk, v)
  for a, r in zip(g_blk, g_ref):
    np.testing.assert_allclose(a, r, atol=1e-5, rtol=1e-5)


def test_blockwise_chunk_against_longer_keys_and_positions():
  """A chunk of T queries at explicit positions over S > T keys (chunked prefill over a cache)."""
  b, t, s, n, k, h = 2, 9, 40, 4, 2, 8
  q, kk, v = _qkv(b, t, s, n, k, h, seed=3)
  q_pos = jnp.asarray([[20 + i for i in range(t)], [5 + i for i in range(t)]], jnp.int32)
  mask = MaskSpec(window=12, sink=2, q_positions=q_pos)
  out = attention_blockwise(q, kk, v, mask, scale=0.4, block_q=4, block_k=8)
  np.testing.assert_allclose(out, attention_reference(q, kk, v, mask, scale=0.4), atol=1e-5, rtol=1e-5)


def test_fully_masked_rows_are_zero_with_zero_grads():
  b, t, n, k, h = 1, 6, 2, 1, 8
  q, kk, v = _qkv(b, t, t, n, k, h)
  seg_q = jnp.asarray([[0, 0, 0, 5, 5, 5]])
  seg_k = jnp.asarray([[0, 0, 0, 1, 1, 1]])  # queries of segment 5 see nothing
  mask = MaskSpec(q_segment_ids=seg_q, kv_segment_ids=seg_k)
  for fn in (lambda *a: attention_reference(*a, mask, scale=1.0),
             lambda *a: attention_blockwise(*a, mask, scale=1.0, block_q=2, block_k=2)):
    out = fn(q, kk, v)
    assert np.all(np.asarray(out[:, 3:]) == 0) and np.all(np.isfinite(out))
    grads = jax.grad(lambda q: jnp.sum(fn(q, kk, v)))(q)
    assert np.all(np.isfinite(grads)) and np.all(np.asarray(grads[:, 3:]) == 0)


def test_bf16_blockwise_close_to_fp32_reference():
  q, kk, v = _qkv(1, 33, 33, 4, 2, 64, dtype=jnp.bfloat16)
  out = attention_blockwise(q, kk, v, MaskSpec(), scale=0.125, block_q=16, block_k=16)
  ref = attention_reference(q.astype(jnp.float32), kk.astype(jnp.float32), v.astype(jnp.float32), MaskSpec(),
                            scale=0.125)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=3e-2)


def test_dispatch_auto_and_named():
  q, kk, v = _qkv(1, 10, 10, 2, 1, 8)
  ref = attention(q, kk, v, impl="reference")
  np.testing.assert_allclose(attention(q, kk, v), ref, atol=1e-5)
  np.testing.assert_allclose(attention(q, kk, v, impl="xla_blockwise"), ref, atol=1e-5)


@pytest.mark.parametrize("impl", sorted(n for n in DECODE_IMPLS.names() if not n.startswith("pallas_")))  # kernels: tests/kernels
@pytest.mark.parametrize("t", [1, 3])
def test_decode_impls_match_reference_attention(impl, t):
  """Decode over a heads-major cache with per-row positions equals reference attention (fwd and grad)."""
  b, s, n, k, h = 2, 50, 6, 2, 16
  q, kk, v = _qkv(b, t, s, n, k, h, seed=7)
  q_pos = jnp.asarray([[30 + i for i in range(t)], [11 + i for i in range(t)]], jnp.int32)
  mask = MaskSpec(window=20, sink=2, q_positions=q_pos)
  ref = attention_reference(q, kk, v, mask, scale=0.25, softcap=4.0)
  kh, vh = jnp.swapaxes(kk, 1, 2), jnp.swapaxes(v, 1, 2)
  out = decode(q, kh, vh, mask=mask, impl=impl, scale=0.25, softcap=4.0)
  np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)
  g = jax.grad(lambda q: jnp.sum(decode(q, kh, vh, mask=mask, impl=impl) ** 2))(q)
  g_ref = jax.grad(lambda q: jnp.sum(attention_reference(q, kk, v, mask, scale=0.25) ** 2))(q)
  np.testing.assert_allclose(g, g_ref, atol=1e-4, rtol=1e-4)


def test_bad_inputs_raise_specific_errors():
  q, kk, v = _qkv(1, 4, 4, 3, 2, 8)
  with pytest.raises(ShapeError, match="multiple of kv heads"):
    attention(q, kk, v)
  q, kk, v = _qkv(1, 4, 4, 4, 2, 8)
  with pytest.raises(ShapeError, match=r"\[B, T, N, H\]"):
    attention(q[0], kk, v)
  with pytest.raises(ShapeError, match="same shape"):
    attention(q, kk, v[:, :3])
  with pytest.raises(ShapeError, match="q_segment_ids"):
    attention(q, kk, v, mask=MaskSpec(q_segment_ids=jnp.zeros((1, 5), jnp.int32),
                                      kv_segment_ids=jnp.zeros((1, 4), jnp.int32)))
  with pytest.raises(ShapeError, match="both"):
    MaskSpec(q_segment_ids=jnp.zeros((1, 4), jnp.int32))
  with pytest.raises(ShapeError, match="window"):
    MaskSpec(window=0)
  with pytest.raises(UnknownNameError, match="unknown attention impl 'flash'.*known: .*reference, .*xla_blockwise"):
    attention(q, kk, v, impl="flash")
  with pytest.raises(ShapeError, match="heads-major"):
    decode(q, kk[0], v[0], mask=MaskSpec())


def test_named_impl_for_another_platform_raises():
  from lcjax.ops.attention import ATTENTION_IMPLS

  name = "_test_tpu_only"
  ATTENTION_IMPLS.register(name, lambda *a, **k: None, platforms=("tpu",))
  try:
    q, kk, v = _qkv(1, 4, 4, 2, 1, 8)
    with pytest.raises(ImplUnavailableError, match="runs on tpu, not on cpu.*impls that run here: .*reference"):
      attention(q, kk, v, impl=name)
  finally:
    ATTENTION_IMPLS._entries.pop(name)


def test_force_reference_env(monkeypatch):
  from lcjax.ops.attention import ATTENTION_IMPLS, AUTO_TABLE, resolve_impl

  assert resolve_impl(ATTENTION_IMPLS, AUTO_TABLE, "auto", {}) == "xla_blockwise"
  monkeypatch.setenv("LCJAX_FORCE_REFERENCE", "1")
  assert resolve_impl(ATTENTION_IMPLS, AUTO_TABLE, "auto", {}) == "reference"
