"""Flash-attention kernels (Triton and TPU targets, interpreted on CPU) vs references: forward and gradients."""

import jax
import jax.numpy as jnp
import pytest

from lcjax.ops.attention_reference import attention_reference
from lcjax.ops.mask import MaskSpec
from pallas_kernels.flash_attention import flash_attention, flash_attention_forward
from pallas_kernels.tpu_interpret import reset_on_failure
from tests.kernels.cases import assert_close, qkv, segments

# (name, B, T, S, N, K, H, dtype, mask kwargs, softcap); TPU key blocks are 128 wide, so S > 128 gives two.
CASES = [
    ("causal_gqa_odd", 1, 37, 37, 4, 2, 64, jnp.float32, dict(), None),
    ("window_sink_cap", 1, 29, 29, 2, 1, 64, jnp.float32, dict(window=7, sink=3), 5.0),
    ("documents_full", 2, 24, 24, 2, 2, 64, jnp.float32, dict(causal=False, segments=True), None),
    ("chunk_longer_keys", 1, 16, 150, 2, 1, 128, jnp.float32, dict(window=40), None),
    ("bf16_mha", 1, 32, 32, 2, 2, 128, jnp.bfloat16, dict(), 30.0),
]
BLOCKS = {"triton": dict(block_q=16, block_k=16), "tpu": dict(block_q=16, block_k=128)}


def _mask_kwargs(b, t, s, mask):
  mask = dict(mask)
  if mask.pop("segments", False):
    mask.update(q_segment_ids=segments(b, t, 1), kv_segment_ids=segments(b, s, 1))
  return mask


def _loss(fn):
  return lambda q, k, v: jnp.sum(jnp.sin(fn(q, k, v).astype(jnp.float32)) * jnp.linspace(-1, 1, q.shape[-1]))


def _value_and_grads(fn, q, k, v):
  """Output and gradients of a fixed scalar loss, one jitted computation."""
  return jax.jit(lambda q, k, v: (fn(q, k, v), jax.grad(_loss(fn), argnums=(0, 1, 2))(q, k, v)))(q, k, v)


@pytest.mark.parametrize("target", ["triton", "tpu"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_flash_matches_reference(target, case):
  _, b, t, s, n, k, h, dtype, mask, softcap = case
  q, kk, v = qkv(b, t, s, n, k, h, dtype)
  kw = dict(_mask_kwargs(b, t, s, mask), softcap=softcap, scale=0.2)
  kernel = lambda q, kk, v: flash_attention(q, kk, v, target=target, interpret=True, **BLOCKS[target], **kw)  # noqa
  ref = lambda q, kk, v: flash_attention(q, kk, v, target="reference", **kw)  # noqa: E731
  with reset_on_failure():
    out, grads = _value_and_grads(kernel, q, kk, v)
  want, want_grads = _value_and_grads(ref, q, kk, v)
  assert_close(out, want, dtype)
  assert_close(grads, want_grads, dtype)


@pytest.mark.parametrize("case", CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_pallas_reference_matches_lcjax_reference(case):
  """The kernels' jnp oracle agrees with lcjax's own (independent) reference, lse included."""
  _, b, t, s, n, k, h, dtype, mask, softcap = case
  q, kk, v = qkv(b, t, s, n, k, h, dtype)
  kw = _mask_kwargs(b, t, s, mask)
  spec = MaskSpec(causal=kw.get("causal", True), window=kw.get("window"), sink=kw.get("sink", 0),
                  q_segment_ids=kw.get("q_segment_ids"), kv_segment_ids=kw.get("kv_segment_ids"))
  got = jax.jit(lambda q, kk, v: flash_attention_forward(q, kk, v, target="reference", softcap=softcap, scale=0.2,
                                                         **kw))(q, kk, v)
  want = jax.jit(lambda q, kk, v: attention_reference(q, kk, v, spec, scale=0.2, softcap=softcap,
                                                      return_lse=True))(q, kk, v)
  assert_close(got, want, dtype)


def test_fully_masked_rows_are_zero():
  q, kk, v = qkv(1, 16, 16, 2, 1, 64)
  seg_q = jnp.asarray([[0] * 8 + [5] * 8])
  seg_k = jnp.asarray([[0] * 8 + [1] * 8])
  for target in ("triton", "tpu"):
    out = jax.jit(lambda q, kk, v: flash_attention(q, kk, v, target=target, interpret=True, q_segment_ids=seg_q,
                                                   kv_segment_ids=seg_k, **BLOCKS[target]))(q, kk, v)
    assert float(jnp.abs(out[:, 8:]).max()) == 0.0 and bool(jnp.all(jnp.isfinite(out)))


def test_bad_blocks_raise():
  q, kk, v = qkv(1, 16, 16, 2, 1, 64)
  with pytest.raises(ValueError, match="powers of two"):
    flash_attention(q, kk, v, target="triton", block_q=24, interpret=True)
  with pytest.raises(ValueError, match=r"\(8, 128\)"):
    flash_attention(q, kk, v, target="tpu", block_k=64, interpret=True)
  with pytest.raises(ValueError, match="known"):
    flash_attention(q, kk, v, target="cuda")
