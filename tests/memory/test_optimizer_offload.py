"""Optimizer state and master params in a host tier: every mode's update equals the on-device update."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from lcjax.errors import ConfigError
from lcjax.memory.optimizer import OFFLOAD_MODES, default_group, init_offloaded, make_update
from lcjax.memory.tiers import memory_kind_of


def _params():
  k = jax.random.split(jax.random.PRNGKey(0), 4)
  return {"embed": jax.random.normal(k[0], (16, 8)),
          "layers": {0: {"w": jax.random.normal(k[1], (8, 8))}, 1: {"w": jax.random.normal(k[2], (8, 8))}},
          "norm": jnp.ones((8,))}


def _grads(step):
  return jax.tree.map(lambda x: jnp.sin(x * (step + 1)), _params())


def _run(mode, steps=3):
  opt = optax.adamw(1e-2, weight_decay=0.1)
  state = init_offloaded(opt, _params(), mode)
  update = make_update(opt, mode)
  for s in range(steps):
    state, device_params = update(state, _grads(s))
  return state, device_params


@pytest.mark.parametrize("mode", ["host_state", "per_layer", "cpu"])
def test_offloaded_update_equals_device_update(mode):
  """Bit-identical for whole-tree modes; per_layer compiles each group separately, so XLA's fusion of the Adam
  arithmetic may differ by an ulp (checked to 1e-6 relative)."""
  want, _ = _run("device")
  got, device_params = _run(mode)
  tol = dict(rtol=1e-6, atol=1e-7) if mode == "per_layer" else dict(rtol=0, atol=0)
  for a, b in zip(jax.tree.leaves((got.params, device_params)), jax.tree.leaves((want.params, want.params))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **tol)
  if mode != "cpu":
    kinds = {memory_kind_of(x) for x in jax.tree.leaves((got.params, got.opt_state))}
    assert kinds == {"pinned_host"}
    assert {memory_kind_of(x) for x in jax.tree.leaves(device_params)} == {"device"}
  if mode == "per_layer":
    assert set(got.opt_state) == {"embed", "layers/0", "layers/1", "norm"}
    mu = got.opt_state["layers/1"][0].mu
    np.testing.assert_allclose(np.asarray(mu["['layers'][1]['w']"]), np.asarray(want.opt_state[0].mu["layers"][1]["w"]),
                               **tol)


def test_sharded_host_state_keeps_its_sharding():
  mesh = jax.make_mesh((8,), ("fsdp",), axis_types=(jax.sharding.AxisType.Auto,))
  params = {"w": jax.device_put(jnp.arange(64.0).reshape(16, 4), NamedSharding(mesh, P("fsdp")))}
  opt = optax.sgd(0.5, momentum=0.9)
  state = init_offloaded(opt, params, "host_state")
  assert state.params["w"].sharding.memory_kind == "pinned_host"
  assert state.params["w"].sharding.spec == P("fsdp")
  state, dev = make_update(opt, "host_state")(state, {"w": jnp.ones((16, 4))})
  assert state.params["w"].sharding.memory_kind == "pinned_host" and dev["w"].sharding.spec == P("fsdp")
  np.testing.assert_array_equal(np.asarray(dev["w"]), np.arange(64.0).reshape(16, 4) - 0.5)


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
def test_host_state_update_lowers_with_host_placement(platform):
  opt = optax.adam(1e-3)
  state = init_offloaded(opt, _params(), "per_layer")
  text = make_update(opt, "per_layer").trace(state, _grads(0)).lower(lowering_platforms=(platform,)).as_text()
  assert text.count('_xla_buffer_placement = "pinned_host"') >= 4  # every group goes back to the host
  assert '_xla_buffer_placement = "device"' in text


def test_modes_and_groups():
  assert OFFLOAD_MODES == ("device", "host_state", "per_layer", "cpu")
  with pytest.raises(ConfigError, match="unknown optimizer offload mode 'disk'"):
    init_offloaded(optax.sgd(1.0), _params(), "disk")
  paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(_params())[0]]
  assert sorted({default_group(p) for p in paths}) == ["embed", "layers/0", "layers/1", "norm"]
  from lcjax.memory.tiers import Tier
  with pytest.raises(ConfigError, match="needs a JAX host memory kind"):
    init_offloaded(optax.sgd(1.0), _params(), "host_state", Tier("cxl", "cxl", 1 << 30, 1, 1, 1, 0, 250e-9, None, (0,)))
