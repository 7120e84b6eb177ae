"""Kernels inside `shard_map` on 8 CPU devices (batch over fsdp, heads over tensor): interpreted results and
gradients equal the unsharded call, and the sharded program lowers for TPU and cuda."""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from lcjax.config import MeshConfig
from lcjax.sharding.mesh import create_mesh
from pallas_kernels.decode_attention import decode_attention
from pallas_kernels.flash_attention import flash_attention
from pallas_kernels.tpu_interpret import reset_on_failure
from tests.kernels.cases import H100, assert_close, no_device, qkv

B, T, N, K, H = 2, 16, 4, 4, 64
TOKENS = P("fsdp", None, "tensor", None)  # [B, T, N, H] and [B, S, K, H]
CACHE = P("fsdp", "tensor", None, None)   # [B, K, S, H]


@pytest.fixture(scope="module")
def mesh():
  if jax.device_count() < 8:
    pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=8 (tests/conftest.py sets it)")
  return create_mesh(MeshConfig(fsdp=2, tensor=4))


def _flash(target, **options):
  blocks = dict(block_q=16, block_k=16) if target == "triton" else dict(block_q=16, block_k=128)
  return lambda q, k, v: flash_attention(q, k, v, target=target, window=9, **blocks, **options)


def _sharded(fn, mesh, specs, out):
  return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=out, check_vma=False)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["triton", "tpu"])
def test_flash_in_shard_map_equals_unsharded(mesh, target):
  q, k, v = qkv(B, T, T, N, K, H, seed=4)
  fn = _flash(target, interpret=True)
  loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))  # noqa: E731
  sharded = _sharded(fn, mesh, (TOKENS,) * 3, TOKENS)
  with reset_on_failure():
    got = jax.jit(lambda *a: (sharded(*a), jax.grad(loss(sharded), argnums=(0, 1, 2))(*a)))(q, k, v)
    want = jax.jit(lambda *a: (fn(*a), jax.grad(loss(fn), argnums=(0, 1, 2))(*a)))(q, k, v)
  assert_close(got, want, jnp.float32)


def test_decode_in_shard_map_equals_unsharded(mesh):
  q, k, v = qkv(B, 1, 40, N, K, H, seed=5, heads_major_cache=True)
  fn = lambda q, k, v: decode_attention(q, k, v, target="tpu", block_size=16, num_splits=2, interpret=True)  # noqa
  with reset_on_failure():
    got = jax.jit(_sharded(fn, mesh, (TOKENS, CACHE, CACHE), TOKENS))(q, k, v)
  assert_close(got, jax.jit(fn)(q, k, v), jnp.float32)


def _gpu_mesh(mesh):
  """The same mesh shape over abstract H100s (Triton lowering needs a GPU device kind)."""
  auto = (jax.sharding.AxisType.Auto,) * len(mesh.axis_names)
  return jax.sharding.AbstractMesh(tuple(mesh.shape.values()), mesh.axis_names, axis_types=auto,
                                   abstract_device=H100)


@pytest.mark.parametrize("target,platform,call", [("tpu", "tpu", "tpu_custom_call"),
                                                  ("triton", "cuda", "__gpu$xla.gpu.triton")])
def test_sharded_kernels_lower(mesh, target, platform, call):
  q, k, v = (jnp.zeros(x.shape, jnp.bfloat16) for x in qkv(B, 256, 256, N, K, 128))
  mesh = _gpu_mesh(mesh) if target == "triton" else mesh
  with jax.sharding.use_abstract_mesh(mesh) if target == "triton" else no_device():
    sharded = _sharded(_flash(target), mesh, (TOKENS,) * 3, TOKENS)
    grad = jax.grad(lambda *a: jnp.sum(sharded(*a).astype(jnp.float32)), argnums=(0, 1, 2))
    text = jax.jit(grad).trace(q, k, v).lower(lowering_platforms=(platform,)).as_text()
  assert text.count(f"custom_call @{call}") == 3
