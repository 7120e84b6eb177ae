"""Rule sets, mesh construction (auto-fill, ICI/DCN), activation constraints and the multi-process config."""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from lcjax.config import MeshConfig, from_dict
from lcjax.errors import ConfigError, ShardingError, UnknownNameError
from lcjax.sharding import axes as ax
from lcjax.sharding import distributed
from lcjax.sharding.mesh import create_mesh, mesh_and_rules, mesh_sizes
from lcjax.sharding.partition import active, constrain, use_sharding
from lcjax.sharding.rules import RULE_SETS, fsdp_tp, get_rules, make_rules, resolve


def test_registry_holds_the_four_rule_sets():
  assert set(RULE_SETS.names()) >= {"fsdp", "fsdp_tp", "fsdp_cp", "decode"}
  with pytest.raises(UnknownNameError, match="unknown rule set 'fsdpp'.*Did you mean 'fsdp'"):
    get_rules("fsdpp")


def test_resolve_takes_free_dividing_axes_in_order():
  sizes = {"data": 2, "fsdp": 4, "context": 1, "tensor": 2}
  rules = fsdp_tp()
  assert resolve((ax.EMBED, ax.Q_HEADS, ax.HEAD_DIM), rules, sizes, (64, 8, 16)) == P("fsdp", "tensor")
  # 9 heads do not split over tensor=2: replicated on that axis, the rest still sharded.
  assert resolve((ax.EMBED, ax.Q_HEADS, ax.HEAD_DIM), rules, sizes, (64, 9, 16)) == P("fsdp")
  assert resolve((ax.ACT_BATCH, ax.ACT_SEQ, ax.ACT_EMBED), rules, sizes, (8, 4, 64)) == P(("data", "fsdp"))
  assert resolve((ax.ACT_BATCH, None), rules, sizes, (2, 5)) == P("data")  # fsdp=4 does not divide what is left
  assert resolve((ax.ACT_BATCH,), rules, {**sizes, "data": 1}, (8,)) == P("fsdp")  # size-1 axes are left out
  # An axis used by an earlier dim is not reused.
  both = make_rules("both", {ax.EMBED: "fsdp", ax.MLP: "fsdp"})
  assert resolve((ax.EMBED, ax.MLP), both, sizes, (64, 128)) == P("fsdp")


def test_bad_rules_are_named():
  with pytest.raises(ShardingError, match="rule 'embed' -> 'model' names an unknown mesh axis; mesh axes are "
                                          "data, fsdp, context, tensor"):
    make_rules("mine", {ax.EMBED: "model"})
  with pytest.raises(ShardingError, match="unknown logical axis 'hidden'"):
    make_rules("mine", {"hidden": "fsdp"})
  with pytest.raises(ShardingError, match="name 2 dims; the array has shape \\(3,\\)"):
    resolve((ax.EMBED, ax.MLP), fsdp_tp(), {"fsdp": 2}, (3,))


def test_mesh_auto_fill_and_errors():
  mesh = create_mesh(MeshConfig(data=2, fsdp=-1, tensor=2))
  assert mesh_sizes(mesh) == {"data": 2, "fsdp": 2, "context": 1, "tensor": 2}
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
  with pytest.raises(ShardingError, match=r"data=3, fsdp=-1, context=1, tensor=1\) cannot be completed: 3 does "
                                          r"not divide 8"):
    create_mesh(MeshConfig(data=3))
  with pytest.raises(ShardingError, match="multiply to 4, but there are 8"):
    create_mesh(MeshConfig(data=2, fsdp=2))
  with pytest.raises(ConfigError, match="at most one axis may be -1"):
    MeshConfig(data=-1)
  with pytest.raises(ConfigError, match="unknown key\\(s\\) dataa"):
    from_dict(MeshConfig, {"dataa": 2})
  mesh, rules = mesh_and_rules(from_dict(MeshConfig, {"fsdp": 4, "tensor": 2, "rules": "fsdp_tp"}))
  assert rules.name == "fsdp_tp" and mesh_sizes(mesh)["tensor"] == 2


def test_dcn_slices_are_the_major_part_of_an_axis():
  # Two virtual slices of 4 devices: data = dcn 2 x ici 1, fsdp = ici 4. Each data row is one slice.
  mesh = create_mesh(MeshConfig(fsdp=4, dcn_data=2))
  ids = np.vectorize(lambda d: d.id)(mesh.devices)
  assert mesh_sizes(mesh)["data"] == 2
  assert sorted(ids[0].ravel()) == [0, 1, 2, 3] and sorted(ids[1].ravel()) == [4, 5, 6, 7]
  # dcn x ici inside one axis: fsdp = dcn 2 x ici 4, slices are contiguous halves of the axis.
  mesh = create_mesh(MeshConfig(fsdp=4, dcn_fsdp=2))
  ids = np.vectorize(lambda d: d.id)(mesh.devices).reshape(-1)
  assert list(ids[:4]) == [0, 1, 2, 3] and list(ids[4:]) == [4, 5, 6, 7]
  with pytest.raises(ShardingError, match="ask for 3 slices; 8 devices do not split into 3 equal groups"):
    create_mesh(MeshConfig(fsdp=-1, dcn_data=3))


def test_constrain_is_identity_without_context_and_shards_with_one():
  x = jnp.ones((8, 4, 16))
  assert constrain(x, (ax.ACT_BATCH, ax.ACT_SEQ, ax.ACT_EMBED)) is x
  mesh = create_mesh(MeshConfig(data=2, fsdp=4))

  @jax.jit
  def f(x):
    with use_sharding(mesh, "fsdp"):
      return constrain(x * 2, (ax.ACT_BATCH, ax.ACT_SEQ, ax.ACT_EMBED))

  out = f(x)
  assert out.sharding.spec == P(("data", "fsdp"))
  np.testing.assert_array_equal(out, x * 2)
  assert active() is None


def test_distributed_config_from_env_and_flags():
  cfg = distributed.from_env({"LCJAX_COORDINATOR": "10.0.0.1:1234", "LCJAX_NUM_PROCESSES": "4",
                              "LCJAX_PROCESS_ID": "3"})
  assert (cfg.coordinator, cfg.num_processes, cfg.process_id) == ("10.0.0.1:1234", 4, 3)
  parser = argparse.ArgumentParser()
  distributed.add_flags(parser)
  args = parser.parse_args(["--coordinator", "h:1", "--num-processes", "2", "--process-id", "1"])
  assert distributed.from_flags(args) == distributed.DistributedConfig("h:1", 2, 1)
  with pytest.raises(ConfigError, match="process_id=2 must be in \\[0, num_processes=2\\)"):
    distributed.DistributedConfig("h:1", 2, 2)
  with pytest.raises(ConfigError, match="needs coordinator='host:port'"):
    distributed.DistributedConfig("", 2, 0)
  with pytest.raises(ConfigError, match="LCJAX_NUM_PROCESSES must be an integer, got 'two'"):
    distributed.from_env({"LCJAX_NUM_PROCESSES": "two"})
  assert distributed.initialize(distributed.DistributedConfig()).num_processes == 1  # single process: no-op
