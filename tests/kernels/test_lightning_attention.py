"""Lightning-attention Pallas kernels: interpret == reference (forward, gradients incl. decay and state), lowering.

Interpreted grids stay tiny: triton (B*N) = 2 programs, tpu (B*N*U) = 6 steps.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.ops import linear_attention
from pallas_kernels.lightning_attention import lightning_attention
from tests.kernels.cases import gpu_device, no_device

B, T, N, K, H = 1, 37, 2, 1, 16
RATES = jnp.asarray([0.4, 0.01])
SEG = jnp.asarray([[0] * 10 + [1] * 20 + [2] * 7])


@pytest.fixture(scope="module")
def inputs():
  ks = jax.random.split(jax.random.PRNGKey(1), 4)
  return (jax.random.normal(ks[0], (B, T, N, H)), jax.random.normal(ks[1], (B, T, K, H)),
          jax.random.normal(ks[2], (B, T, K, H)), jax.random.normal(ks[3], (B, N, H, H)))


def _grads(impl, **options):
  def loss(q, k, v, rates, s0):
    o, s = linear_attention(q, k, v, rates, initial_state=s0, segment_ids=SEG, return_state=True, impl=impl,
                            **options)
    return jnp.sum(o * jnp.cos(o)) + jnp.sum(jnp.sin(s)), (o, s)
  return jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4), has_aux=True))


@pytest.fixture(scope="module")
def want(inputs):
  return _grads("reference")(*inputs[:3], RATES, inputs[3])


@pytest.mark.parametrize("impl", ["pallas_triton", "pallas_tpu"])
def test_interpret_matches_reference_forward_and_grads(inputs, want, impl):
  got = _grads(impl, block_size=16, interpret=True)(*inputs[:3], RATES, inputs[3])
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-4 * float(np.abs(w).max()), rtol=0)


PLATFORM = {"triton": ("cuda", "__gpu$xla.gpu.triton", gpu_device, 64),
            "tpu": ("tpu", "tpu_custom_call", no_device, 128)}


@pytest.mark.parametrize("target", ["triton", "tpu"])
def test_lowers_forward_and_backward(target):
  platform, call, device, h = PLATFORM[target]
  q = jnp.zeros((2, 500, 4, h), jnp.bfloat16)
  kv = jnp.zeros((2, 500, 2, h), jnp.bfloat16)
  seg = jnp.zeros((2, 500), jnp.int32)
  fwd = lambda q, k, v, r: lightning_attention(q, k, v, r, target=target, block_size=128,  # noqa: E731
                                               segment_ids=seg)[0]
  grad = jax.grad(lambda *a: jnp.sum(fwd(*a).astype(jnp.float32)), argnums=(0, 1, 2, 3))
  for fn, kernels in ((fwd, 1), (grad, 3)):  # forward; forward + dQ + dK/dV
    with device():
      text = jax.jit(fn).trace(q, kv, kv, jnp.ones(4)).lower(lowering_platforms=(platform,)).as_text()
    assert text.count(f"custom_call @{call}") == kernels
