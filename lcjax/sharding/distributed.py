"""Multi-process (multi-host) start-up: `jax.distributed.initialize` from flags or environment variables.

Every process runs the same program; after `initialize`, `jax.devices()` lists the devices of all processes and a
mesh from `create_mesh` spans them (one slice per process unless the devices report TPU slices). On CPU the
cross-process collectives use gloo (`cpu_collectives="gloo"`), which is how this is tested: 2 local processes x 4
CPU devices on loopback.

  LCJAX_COORDINATOR=127.0.0.1:12355 LCJAX_NUM_PROCESSES=2 LCJAX_PROCESS_ID=0 python train.py   (and id 1)
  python train.py --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 0
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import jax

from lcjax.errors import ConfigError

ENV = {"coordinator": "LCJAX_COORDINATOR", "num_processes": "LCJAX_NUM_PROCESSES", "process_id": "LCJAX_PROCESS_ID",
       "local_devices": "LCJAX_LOCAL_DEVICES", "cpu_collectives": "LCJAX_CPU_COLLECTIVES"}


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
  """How this process joins a multi-process run.

  Attributes:
    coordinator: "host:port" of process 0's coordinator service ("" = single process, no initialize).
    num_processes: total processes.  process_id: this process's index in [0, num_processes).
    local_devices: CPU only: virtual devices of this process (0 = leave XLA_FLAGS alone).
    cpu_collectives: CPU cross-process collectives implementation ("gloo" or "mpi"); "" = JAX's default.
  """

  coordinator: str = ""
  num_processes: int = 1
  process_id: int = 0
  local_devices: int = 0
  cpu_collectives: str = "gloo"

  def __post_init__(self):
    if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
      raise ConfigError(f"process_id={self.process_id} must be in [0, num_processes={self.num_processes})")
    if self.num_processes > 1 and ":" not in self.coordinator:
      raise ConfigError(f"a run of {self.num_processes} processes needs coordinator='host:port', "
                        f"got {self.coordinator!r}")
    if self.cpu_collectives not in ("", "gloo", "mpi"):
      raise ConfigError(f"cpu_collectives must be gloo, mpi or '', got {self.cpu_collectives!r}")


def from_env(environ=None) -> DistributedConfig:
  """A `DistributedConfig` from LCJAX_COORDINATOR, LCJAX_NUM_PROCESSES, LCJAX_PROCESS_ID, LCJAX_LOCAL_DEVICES,
  LCJAX_CPU_COLLECTIVES (unset ones keep their defaults)."""
  environ = os.environ if environ is None else environ
  values = {}
  for field, var in ENV.items():
    if var in environ:
      raw = environ[var]
      values[field] = raw if field in ("coordinator", "cpu_collectives") else _int(var, raw)
  return DistributedConfig(**values)


def _int(name: str, raw: str) -> int:
  try:
    return int(raw)
  except ValueError:
    raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def add_flags(parser: argparse.ArgumentParser) -> None:
  """Adds --coordinator, --num-processes, --process-id, --local-devices, --cpu-collectives (defaults: env)."""
  env = from_env()
  parser.add_argument("--coordinator", default=env.coordinator, help="host:port of process 0 (multi-process)")
  parser.add_argument("--num-processes", type=int, default=env.num_processes)
  parser.add_argument("--process-id", type=int, default=env.process_id)
  parser.add_argument("--local-devices", type=int, default=env.local_devices, help="CPU: virtual devices/process")
  parser.add_argument("--cpu-collectives", default=env.cpu_collectives, choices=("", "gloo", "mpi"))


def from_flags(args: argparse.Namespace) -> DistributedConfig:
  """The config of parsed `add_flags` arguments."""
  return DistributedConfig(args.coordinator, args.num_processes, args.process_id, args.local_devices,
                           args.cpu_collectives)


def initialize(cfg: DistributedConfig | None = None) -> DistributedConfig:
  """Joins the run described by `cfg` (default: `from_env()`); a single-process config does nothing.

  Must run before JAX creates its backends (before the first `jax.devices()` or computation).
  """
  cfg = from_env() if cfg is None else cfg
  if cfg.local_devices:
    jax.config.update("jax_num_cpu_devices", cfg.local_devices)
  if cfg.num_processes == 1:
    return cfg
  if cfg.cpu_collectives:
    jax.config.update("jax_cpu_collectives_implementation", cfg.cpu_collectives)
  jax.distributed.initialize(coordinator_address=cfg.coordinator, num_processes=cfg.num_processes,
                             process_id=cfg.process_id)
  return cfg
