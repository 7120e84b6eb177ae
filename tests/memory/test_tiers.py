"""Tiers: detection from sysfs (CXL = CPU-less NUMA nodes), placement by JAX memory kind or NUMA-bound numpy
buffers, measured bandwidths, and clear errors."""

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from lcjax.errors import ConfigError, ImplUnavailableError, UnknownNameError
from lcjax.memory import TIERS, Tier, detect_tiers, memory_kind_of, numa, place, tier
from lcjax.memory.measure import measure
from lcjax.memory.tiers import named_sharding_in


def _fake_sysfs(root, nodes):
  for node, (cpus, kib) in nodes.items():
    d = root / f"node{node}"
    d.mkdir(parents=True)
    (d / "cpulist").write_text(cpus + "\n")
    (d / "meminfo").write_text(f"Node {node} MemTotal:       {kib} kB\nNode {node} MemFree: 1 kB\n")
  (root / "possible").write_text("0-3\n")
  return str(root)


def test_cpu_less_nodes_become_numbered_cxl_tiers(tmp_path):
  root = _fake_sysfs(tmp_path, {0: ("0-3,8", 64 << 20), 1: ("4-7", 64 << 20), 2: ("", 128 << 20),
                                3: ("", 256 << 20)})
  nodes = numa.detect_nodes(root)
  assert [n.cpus for n in nodes][:2] == [(0, 1, 2, 3, 8), (4, 5, 6, 7)]
  assert [n.node for n in nodes if n.cpu_less] == [2, 3]
  tiers = {t.name: t for t in detect_tiers(nodes=nodes)}
  assert set(tiers) == {"device", "pinned_host", "unpinned_host", "cxl0", "cxl1"}
  assert tiers["cxl0"].numa_nodes == (2,) and tiers["cxl1"].capacity_bytes == 256 << 30
  assert tiers["pinned_host"].numa_nodes == (0, 1) and tiers["pinned_host"].capacity_bytes == 128 << 30
  single = {t.name for t in detect_tiers(nodes=numa.detect_nodes(_fake_sysfs(tmp_path / "b", {
      0: ("0-1", 1 << 20), 1: ("", 1 << 20)})))}
  assert "cxl" in single and "cxl0" not in single
  assert numa.detect_nodes(str(tmp_path / "missing")) == []


@pytest.mark.parametrize("name", ["device", "pinned_host", "unpinned_host"])
def test_place_uses_jax_memory_kinds(name):
  x = place(jnp.arange(8.0), name)
  assert memory_kind_of(x) == name
  np.testing.assert_array_equal(np.asarray(x), np.arange(8.0))


def test_named_sharding_in_a_tier_keeps_the_layout():
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  s = named_sharding_in("pinned_host", mesh, P("data"))
  x = jax.device_put(jnp.arange(16.0), s)
  assert x.sharding.memory_kind == "pinned_host" and x.sharding.spec == P("data")
  y = place(x, "unpinned_host", x.sharding)
  assert y.sharding.memory_kind == "unpinned_host" and y.sharding.spec == P("data")
  with pytest.raises(ImplUnavailableError, match="has no JAX memory kind"):
    named_sharding_in(Tier("cxl", "cxl", 1, 1, 1, 1, 0), mesh, P())


@pytest.mark.skipif(numa.libnuma() is None, reason="libnuma not installed")
def test_numa_buffers_are_bound_to_their_node():
  node = numa.detect_nodes()[0].node
  cxl_like = Tier("cxl", "cxl", 1 << 30, 1e9, 1e9, 1e9, 0, 250e-9, None, (node,))
  x = place(np.arange(3 * 4096, dtype=np.float32), cxl_like)
  assert isinstance(x, np.ndarray) and x.ctypes.data % numa.PAGE == 0
  assert numa.page_node(x) == node and numa.page_node(x, x.nbytes - 4) == node
  np.testing.assert_array_equal(x, np.arange(3 * 4096, dtype=np.float32))
  striped = numa.numa_buffer((1 << 20,), np.uint8, (node, node), stripe_bytes=numa.PAGE)
  assert numa.page_node(striped, numa.PAGE) == node


def test_binding_to_an_absent_node_is_a_logged_no_op(caplog):
  with caplog.at_level(logging.WARNING):
    x = numa.numa_buffer((1024,), np.float32, (63,))
  assert x.shape == (1024,) and not x.any()
  if numa.libnuma() is not None:
    assert "not present" in caplog.text


def test_registry_configure_and_errors():
  assert {"device", "pinned_host", "unpinned_host"} <= set(TIERS.names())
  small = tier("pinned_host", capacity_bytes=1 << 30)
  assert small.capacity_bytes == 1 << 30 and small.transfer_seconds(25e9) == pytest.approx(1 + small.latency_s)
  if not any(n.cpu_less for n in numa.detect_nodes()):
    with pytest.raises(ImplUnavailableError, match="needs a CPU-less NUMA node"):
      tier("cxl")
  with pytest.raises(UnknownNameError, match="unknown memory tier 'pinned'"):
    tier("pinned")
  with pytest.raises(ConfigError, match="kind must be device, host or cxl"):
    Tier("x", "disk", 1, 1, 1, 1, 0)
  with pytest.raises(ConfigError, match="capacity_bytes must be > 0"):
    small.replace(capacity_bytes=0)


@pytest.mark.parametrize("name", ["pinned_host", "device"])
def test_measure_times_real_copies(name):
  t = measure(name, nbytes=4 << 20, repeats=2)
  assert t.name == name and t.memory_kind == name
  for f in ("to_device_bw", "from_device_bw", "cpu_bw"):
    assert 1e7 < getattr(t, f) < 1e13, (f, getattr(t, f))
  assert 0 < t.latency_s < t.transfer_seconds(4 << 20)
  cxl_like = Tier("cxl", "cxl", 1 << 30, 1, 1, 1, 0, 250e-9, None, (0,))
  assert measure(cxl_like, nbytes=1 << 20, repeats=1).to_device_bw > 1e7  # numpy-buffer path
