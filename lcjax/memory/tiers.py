"""Memory tiers: where an array lives, how big that memory is and how fast data moves to the accelerator.

| tier           | backing                                                   | placement                          |
|----------------|-----------------------------------------------------------|------------------------------------|
| device         | accelerator memory (HBM; host RAM on the CPU backend)     | JAX memory kind `device`           |
| pinned_host    | page-locked host RAM (DMA-able without a staging copy)    | JAX memory kind `pinned_host`      |
| unpinned_host  | pageable host RAM                                         | JAX memory kind `unpinned_host`    |
| cxl, cxl0, ... | a CPU-less NUMA node (a CXL memory expander card)         | numpy buffer bound with `mbind`    |

A memory kind the backend does not report falls back to a host numpy buffer (logged once). Tiers are frozen
dataclasses: the detected ones are in `TIERS`; `tier(name, **changes)` returns a configured copy, and
`lcjax.memory.measure.measure(tier)` one with bandwidth and latency timed on this machine.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os

import jax
import numpy as np
from jax.sharding import NamedSharding, Sharding, SingleDeviceSharding

from lcjax.errors import ConfigError, ImplUnavailableError
from lcjax.memory import numa
from lcjax.registry import Registry

log = logging.getLogger(__name__)

JAX_KINDS = ("device", "pinned_host", "unpinned_host")


@dataclasses.dataclass(frozen=True)
class Tier:
  """One memory tier.

  Attributes:
    name: registry name (`device`, `pinned_host`, `unpinned_host`, `cxl`, `cxl0`, ...).
    kind: `device` (accelerator memory), `host` (local DRAM) or `cxl` (CPU-less NUMA node).
    capacity_bytes: usable bytes.
    to_device_bw: bytes/s when moving data from this tier to the accelerator (H2D; device: HBM bandwidth).
    from_device_bw: bytes/s from the accelerator into this tier (D2H).
    cpu_bw: bytes/s a CPU streams through this tier (what a CPU-side optimizer step sees).
    latency_s: fixed cost of one transfer to or from the accelerator (DMA setup, dispatch).
    access_latency_s: load-to-use latency of one CPU cache miss served by this memory (about 100 ns for local
      DRAM, 170-250 ns for CXL); with a CPU's outstanding misses it bounds a CPU pass (Little's law).
    memory_kind: the JAX memory kind used for placement, or None for a numpy buffer.
    numa_nodes: host NUMA nodes backing the tier (several: pages striped over them).
  """

  name: str
  kind: str
  capacity_bytes: int
  to_device_bw: float
  from_device_bw: float
  cpu_bw: float
  latency_s: float
  access_latency_s: float = 100e-9
  memory_kind: str | None = None
  numa_nodes: tuple[int, ...] = ()

  def __post_init__(self):
    if self.kind not in ("device", "host", "cxl"):
      raise ConfigError(f"Tier.kind must be device, host or cxl; got {self.kind!r}")
    for f in ("capacity_bytes", "to_device_bw", "from_device_bw", "cpu_bw"):
      if not getattr(self, f) > 0:
        raise ConfigError(f"Tier {self.name!r}: {f} must be > 0, got {getattr(self, f)}")
    for f in ("latency_s", "access_latency_s"):
      if getattr(self, f) < 0:
        raise ConfigError(f"Tier {self.name!r}: {f} must be >= 0, got {getattr(self, f)}")

  def transfer_seconds(self, nbytes: float, to_device: bool = True) -> float:
    """Time to move `nbytes` between this tier and the accelerator: latency + bytes / bandwidth."""
    if nbytes <= 0:
      return 0.0
    return self.latency_s + nbytes / (self.to_device_bw if to_device else self.from_device_bw)

  def replace(self, **changes) -> "Tier":
    """A configured copy (validated again)."""
    return dataclasses.replace(self, **changes)


# Defaults where nothing is measured: HBM-class device, PCIe 4.0 x16 host link (pageable memory needs a staging
# copy, about half the pinned rate), DDR local DRAM, and a CXL 2.0 x8/x16 expander (about 2x DRAM latency, 170-250
# ns vs 80-140 ns, as reported by Liaw & Chen 2025; bandwidth a fraction of DRAM's).
_GB = 1e9


def _device_capacity(device) -> int:
  try:
    stats = device.memory_stats() or {}
  except Exception:  # noqa: BLE001  (backends without memory stats)
    stats = {}
  limit = stats.get("bytes_limit")
  return int(limit) if limit else _host_ram()


def _host_ram() -> int:
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError):
    return 16 << 30


def detect_tiers(device=None, nodes: list[numa.NumaNode] | None = None) -> list[Tier]:
  """The tiers of this machine: device, the two host kinds, and one `cxl` tier per CPU-less NUMA node.

  Args:
    device: the accelerator (default `jax.devices()[0]`).  nodes: NUMA nodes (default: read from sysfs).
  Returns:
    Tiers with capacities from the device and the NUMA nodes, default bandwidths/latencies (see `measure`).
  """
  device = device or jax.devices()[0]
  nodes = numa.detect_nodes() if nodes is None else nodes
  on_cpu = device.platform == "cpu"
  cpu_nodes = tuple(n.node for n in nodes if not n.cpu_less)
  local_bytes = sum(n.mem_bytes for n in nodes if not n.cpu_less) or _host_ram()
  dev_bw = 50 * _GB if on_cpu else 2000 * _GB
  tiers = [
      Tier("device", "device", _device_capacity(device), dev_bw, dev_bw, 50 * _GB, 1e-6, 100e-9, "device"),
      Tier("pinned_host", "host", local_bytes, 25 * _GB, 25 * _GB, 50 * _GB, 10e-6, 100e-9, "pinned_host",
           cpu_nodes),
      Tier("unpinned_host", "host", local_bytes, 12 * _GB, 12 * _GB, 50 * _GB, 20e-6, 100e-9, "unpinned_host",
           cpu_nodes),
  ]
  cxl = [n for n in nodes if n.cpu_less and n.mem_bytes > 0]
  for i, node in enumerate(cxl):
    name = "cxl" if len(cxl) == 1 else f"cxl{i}"
    tiers.append(Tier(name, "cxl", node.mem_bytes, 20 * _GB, 20 * _GB, 25 * _GB, 20e-6, 250e-9, None,
                      (node.node,)))
  return tiers


@functools.lru_cache(maxsize=1)
def _registry() -> Registry[Tier]:
  reg: Registry[Tier] = Registry("memory tier")
  for t in detect_tiers():
    reg.register(t.name, t, doc=f"{t.kind} tier, {t.capacity_bytes / 2**30:.1f} GiB"
                 + (f", NUMA node(s) {list(t.numa_nodes)}" if t.kind == "cxl" else ""))
  return reg


class _Tiers:
  """Lazy view of the detected tier registry (detection touches the JAX backend, so it waits for first use)."""

  def __getattr__(self, name):
    return getattr(_registry(), name)

  def __contains__(self, name):
    return name in _registry()


TIERS: Registry[Tier] = _Tiers()  # type: ignore[assignment]


def tier(name_or_tier: str | Tier, **changes) -> Tier:
  """A tier by name (or as given), with optional field changes, e.g. `tier("pinned_host", capacity_bytes=8 << 30)`.

  Raises:
    ImplUnavailableError: `cxl` asked for on a machine without a CPU-less NUMA node.
    UnknownNameError: any other unknown name (listing the known tiers).
  """
  if isinstance(name_or_tier, Tier):
    return name_or_tier.replace(**changes) if changes else name_or_tier
  if name_or_tier.startswith("cxl") and name_or_tier not in TIERS:
    nodes = numa.detect_nodes()
    raise ImplUnavailableError(
        f"memory tier {name_or_tier!r} needs a CPU-less NUMA node (a CXL memory expander); this machine has "
        f"node(s) {[n.node for n in nodes]} all with CPUs. Build one explicitly for planning: "
        f"Tier({name_or_tier!r}, 'cxl', capacity_bytes=..., ...); tiers here: {', '.join(TIERS.names())}")
  t = TIERS.get(name_or_tier)
  return t.replace(**changes) if changes else t


def supports_memory_kind(kind: str, device=None) -> bool:
  """Whether `device` (default: the first) reports the JAX memory kind `kind`."""
  device = device or jax.devices()[0]
  try:
    return kind in {m.kind for m in device.addressable_memories()}
  except Exception:  # noqa: BLE001  (older backends without memories)
    return False


def device_sharding(device=None) -> SingleDeviceSharding:
  """The accelerator's own memory on `device` (default: the first), explicitly, so that `jax.device_put` of an
  array held in a host memory kind really moves it (a bare device would keep the source's memory kind)."""
  device = device or jax.devices()[0]
  return SingleDeviceSharding(device, memory_kind="device" if supports_memory_kind("device", device) else None)


def sharding_for(t: Tier, sharding: Sharding | None = None, device=None) -> Sharding | None:
  """The sharding placing an array in tier `t`, or None when the tier is a numpy buffer on this backend."""
  if t.memory_kind is None or not supports_memory_kind(t.memory_kind, device):
    if t.memory_kind is not None:
      numa._warn_once(f"memory kind {t.memory_kind!r} not supported by this backend: tier {t.name!r} uses host "
                      "numpy buffers")
    return None
  if sharding is None:
    return SingleDeviceSharding(device or jax.devices()[0], memory_kind=t.memory_kind)
  return sharding.with_memory_kind(t.memory_kind)


def place(x, t: Tier | str, sharding: Sharding | None = None):
  """Puts an array (or pytree of arrays) in tier `t`.

  Args:
    x: array(s).  t: a Tier or its name.  sharding: layout to keep (its memory kind is replaced), e.g. a
      `NamedSharding(mesh, spec)`; default: the first device.
  Returns:
    jax.Array(s) with `sharding.memory_kind == t.memory_kind`, or numpy arrays (NUMA-bound for CXL tiers).
  """
  t = tier(t)
  s = sharding_for(t, sharding)
  if s is not None:
    return jax.device_put(x, s)
  return jax.tree.map(lambda a: _numpy_in_tier(np.asarray(a), t), x)


def _numpy_in_tier(a: np.ndarray, t: Tier) -> np.ndarray:
  out = numa.numa_buffer(a.shape, a.dtype, t.numa_nodes if t.kind == "cxl" else ())
  out[...] = a
  return out


def memory_kind_of(x) -> str:
  """'numpy' for host numpy buffers, else the JAX memory kind of the array's sharding."""
  if isinstance(x, np.ndarray):
    return "numpy"
  return x.sharding.memory_kind or "device"


def named_sharding_in(t: Tier | str, mesh, spec) -> NamedSharding:
  """`NamedSharding(mesh, spec, memory_kind=...)` for a tier with a JAX memory kind."""
  t = tier(t)
  if t.memory_kind is None:
    raise ImplUnavailableError(f"tier {t.name!r} has no JAX memory kind; place arrays there with `place` "
                               f"(numpy buffers), not with a NamedSharding")
  return NamedSharding(mesh, spec, memory_kind=t.memory_kind)
