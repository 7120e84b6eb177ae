"""LASP context-parallel lightning attention on 8 CPU devices == single device (forward, state, all gradients)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.config import MeshConfig
from lcjax.errors import ShapeError, ShardingError
from lcjax.ops import linear_attention
from lcjax.sharding.mesh import create_mesh
from lcjax.sharding.partition import use_sharding

B, T, N, K, H = 2, 64, 4, 2, 8
RATES = jnp.asarray([0.3, 0.1, 0.01, 0.0])


def _inputs():
  ks = jax.random.split(jax.random.PRNGKey(0), 4)
  seg = np.zeros((B, T), np.int32)
  seg[0, 10:32], seg[0, 32:] = 1, 2      # a document starts exactly at a rank boundary (8 | 32)
  seg[1, 50:] = 1
  return (jax.random.normal(ks[0], (B, T, N, H)), jax.random.normal(ks[1], (B, T, K, H)),
          jax.random.normal(ks[2], (B, T, K, H)), RATES, jax.random.normal(ks[3], (B, N, H, H))), jnp.asarray(seg)


def _grads(impl, seg):
  def loss(q, k, v, rates, s0):
    o, s = linear_attention(q, k, v, rates, initial_state=s0, segment_ids=seg, return_state=True, impl=impl,
                            block_size=4)
    return jnp.sum(o * jnp.cos(o)) + jnp.sum(jnp.sin(s)), (o, s)
  return jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4), has_aux=True))


@pytest.mark.parametrize("mesh_cfg", [MeshConfig(fsdp=1, context=8), MeshConfig(fsdp=1, context=4, tensor=2)])
def test_lasp_equals_single_device(mesh_cfg):
  args, seg = _inputs()
  want = _grads("xla_blocked", seg)(*args)
  with use_sharding(create_mesh(mesh_cfg), "fsdp_cp"):
    got = _grads("lasp", seg)(*args)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-4 * float(np.abs(w).max()), rtol=0)


def test_lasp_needs_a_mesh_and_an_even_split():
  (q, k, v, rates, _), _ = _inputs()
  with pytest.raises(ShardingError, match="lasp"):
    linear_attention(q, k, v, rates, impl="lasp")
  with use_sharding(create_mesh(MeshConfig(fsdp=1, context=8)), "fsdp_cp"):
    with pytest.raises(ShapeError, match="T=60"):
      linear_attention(q[:, :60], k[:, :60], v[:, :60], rates, impl="lasp")
