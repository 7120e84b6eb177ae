"""Every GPU and TPU kernel lowers for its platform on this CPU machine (catches tiling/shape/primitive errors).

Lowering runs each target's Pallas lowering (Triton IR / Mosaic TPU MLIR) on realistic shapes without compiling.
"""

import jax
import jax.numpy as jnp
import pytest

from pallas_kernels.block_sparse import block_sparse_attention
from pallas_kernels.decode_attention import decode_attention, paged_decode_attention
from pallas_kernels.flash_attention import flash_attention
from tests.kernels.cases import gpu_device, no_device

PLATFORM = {"triton": ("cuda", "__gpu$xla.gpu.triton", gpu_device), "tpu": ("tpu", "tpu_custom_call", no_device)}


def _lower(fn, target, *args):
  platform, call, device = PLATFORM[target]
  with device():
    text = jax.jit(fn).trace(*args).lower(lowering_platforms=(platform,)).as_text()
  return text.count(f"custom_call @{call}")


@pytest.mark.parametrize("target", ["triton", "tpu"])
@pytest.mark.parametrize("h,dtype,mask", [(128, jnp.bfloat16, dict(window=200, sink=4)),
                                          (64, jnp.float32, dict(causal=False))])
def test_flash_lowers_forward_and_backward(target, h, dtype, mask):
  b, t, n, k = 2, 512, 8, 2
  q = jnp.zeros((b, t, n, h), dtype)
  kv = jnp.zeros((b, t, k, h), dtype)
  seg = jnp.zeros((b, t), jnp.int32)
  fwd = lambda q, k, v: flash_attention(q, k, v, target=target, softcap=30.0, q_segment_ids=seg,  # noqa: E731
                                        kv_segment_ids=seg, **mask)
  grad = jax.grad(lambda *a: jnp.sum(fwd(*a).astype(jnp.float32)), argnums=(0, 1, 2))
  assert _lower(fwd, target, q, kv, kv) == 1
  assert _lower(grad, target, q, kv, kv) == 3  # forward, dQ, dK/dV


@pytest.mark.parametrize("target", ["triton", "tpu"])
def test_decode_paged_and_block_sparse_lower(target):
  b, t, n, k, h, s, c = 2, 1, 8, 2, 128, 4096, 128
  q = jnp.zeros((b, t, n, h), jnp.bfloat16)
  cache = jnp.zeros((b, k, s, h), jnp.bfloat16)
  pages = jnp.zeros((k, 64, c, h), jnp.bfloat16)
  table = jnp.zeros((b, 32), jnp.int32)
  lengths = jnp.asarray([4000, 100], jnp.int32)
  ids, counts = jnp.zeros((b, k, 8), jnp.int32), jnp.full((b, k), 8, jnp.int32)
  assert _lower(lambda q, c_: decode_attention(q, c_, c_, target=target, kv_lengths=lengths), target, q, cache) == 1
  assert _lower(lambda q, p: paged_decode_attention(q, p, p, table, lengths, target=target), target, q, pages) == 1
  sparse = lambda q, c_, lse=False: block_sparse_attention(q, c_, c_, ids, counts, block_size=c,  # noqa: E731
                                                           target=target, q_positions=(lengths - 1)[:, None],
                                                           return_lse=lse)
  assert _lower(sparse, target, q, cache) == 1
  assert _lower(lambda q, c_: sparse(q, c_, lse=True), target, q, cache) == 1


def test_triton_exports_with_the_custom_call_check_disabled():
  q = jnp.zeros((1, 128, 4, 64), jnp.bfloat16)
  fwd = lambda q, k, v: flash_attention(q, k, v, target="triton")  # noqa: E731
  with gpu_device():
    exported = jax.export.export(jax.jit(fwd), platforms=["cuda"], disabled_checks=[
        jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")])(q, q, q)
  assert "__gpu$xla.gpu.triton" in exported.mlir_module()
