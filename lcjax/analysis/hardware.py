"""Hardware specs for the analytical models: accelerator memory size and bandwidth, peak FLOP/s, host link.

Presets are vendor datasheet figures (dense bf16 FLOP/s, no sparsity; "80GB" parts hold 80 GiB). The host link
is the one-direction bandwidth of the accelerator's host interface: PCIe 4.0 x16 for A100 (32 GB/s), PCIe 5.0
x16 for H100/H200 (64 GB/s). Google publishes no host-link figure for TPU v5e/v5p; 32 and 64 GB/s are
assumptions, stated as such.
`cpu` is measured on this machine (`lcjax.memory.measure`): host RAM as "HBM", its copy bandwidth, a matmul's
FLOP/s, and the pinned-host to device copy bandwidth as the host link.
"""

from __future__ import annotations

import dataclasses
import functools

from lcjax.errors import ConfigError, UnknownNameError
from lcjax.registry import Registry


@dataclasses.dataclass(frozen=True)
class Hardware:
  """One accelerator: HBM bytes and bytes/s, peak FLOP/s, host link bytes/s (one direction), devices (TP)."""

  name: str
  hbm_bytes: float
  hbm_bw: float
  flops: float
  host_bw: float
  devices: int = 1

  def __post_init__(self):
    for f in ("hbm_bytes", "hbm_bw", "flops", "host_bw"):
      if not getattr(self, f) > 0:
        raise ConfigError(f"Hardware {self.name!r}: {f} must be > 0, got {getattr(self, f)}")
    if self.devices < 1:
      raise ConfigError(f"Hardware {self.name!r}: devices must be >= 1, got {self.devices}")

  def replace(self, **changes) -> "Hardware":
    return dataclasses.replace(self, **changes)


_GIB = 2**30
HARDWARE: Registry[Hardware] = Registry("hardware preset")
HARDWARE.register("a100", Hardware("A100 80GB SXM (NVLink)", 80 * _GIB, 2.039e12, 312e12, 32e9),
                  doc="80 GiB HBM2e, 2.039 TB/s, 312 TFLOP/s bf16, PCIe 4.0 x16")
HARDWARE.register("h100", Hardware("H100 80GB SXM", 80 * _GIB, 3.35e12, 989e12, 64e9),
                  doc="80 GiB HBM3, 3.35 TB/s, 989 TFLOP/s bf16, PCIe 5.0 x16")
HARDWARE.register("h200", Hardware("H200 141GB SXM", 141e9, 4.8e12, 989e12, 64e9),
                  doc="141 GB HBM3e, 4.8 TB/s, 989 TFLOP/s bf16, PCIe 5.0 x16")
HARDWARE.register("tpu-v5e", Hardware("TPU v5e", 16 * _GIB, 819e9, 197e12, 32e9),
                  doc="16 GiB HBM2, 819 GB/s, 197 TFLOP/s bf16 (host link assumed 32 GB/s)")
HARDWARE.register("tpu-v5p", Hardware("TPU v5p", 95 * _GIB, 2.765e12, 459e12, 64e9),
                  doc="95 GiB HBM2e, 2.765 TB/s, 459 TFLOP/s bf16 (host link assumed 64 GB/s)")


@functools.lru_cache(maxsize=1)
def this_cpu() -> Hardware:
  """This machine measured: host RAM, device-copy bandwidth, matmul FLOP/s, pinned_host->device bandwidth."""
  from lcjax.memory.measure import measure, measure_flops

  dev, pinned = measure("device", nbytes=64 << 20), measure("pinned_host", nbytes=64 << 20)
  return Hardware("this CPU (measured)", float(dev.capacity_bytes), dev.to_device_bw, measure_flops(),
                  pinned.to_device_bw)


def hardware(name: str, **changes) -> Hardware:
  """A preset by name (`cpu` measures this machine), with optional field changes (e.g. devices=4)."""
  if name == "cpu":
    hw = this_cpu()
  elif name in HARDWARE:
    hw = HARDWARE.get(name)
  else:
    raise UnknownNameError(f"unknown hardware preset {name!r}; known: {', '.join(HARDWARE.names() + ['cpu'])}")
  return hw.replace(**changes) if changes else hw
