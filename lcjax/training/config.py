"""Typed training configs (built with `lcjax.config.from_dict`, unknown keys fail).

  TrainConfig
    model: ModelConfig          data: DataConfig (lcjax.data.pipeline)     optimizer: OptimizerConfig
    checkpoint: CheckpointConfig  mesh: MeshConfig   stages: StageConfig... (length / RoPE / data schedule)
"""

from __future__ import annotations

import dataclasses

from lcjax.config import MeshConfig, ModelConfig, RopeConfig, from_dict
from lcjax.data.pipeline import DataConfig
from lcjax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Attributes: name in OPTIMIZERS (adamw, muon, sgd); schedule in SCHEDULES (constant, cosine, linear, wsd);
  lr peak; warmup_steps; min_lr_ratio (final lr / peak); b1, b2, eps, weight_decay; clip_norm (0 = off)."""

  name: str = "adamw"
  schedule: str = "cosine"
  lr: float = 1e-3
  warmup_steps: int = 0
  min_lr_ratio: float = 0.1
  b1: float = 0.9
  b2: float = 0.95
  eps: float = 1e-8
  weight_decay: float = 0.0
  clip_norm: float = 1.0


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """Attributes: every (steps between saves; 0 = only at the end), max_to_keep, async_save."""

  every: int = 0
  max_to_keep: int = 2
  async_save: bool = True


@dataclasses.dataclass(frozen=True)
class StageConfig:
  """A stage of the length schedule: from step `start` on, rows of `seq_len` (0 = data.seq_len), batch_size
  (0 = data.batch_size), RoPE `rope` (None = the model's) and `data` fields overriding the base data config
  (e.g. another mixture or an SFT source); lr_scale multiplies the schedule's learning rate in this stage."""

  start: int = 0
  seq_len: int = 0
  batch_size: int = 0
  rope: RopeConfig | None = None
  data: dict = dataclasses.field(default_factory=dict)
  lr_scale: float = 1.0

  def __post_init__(self):
    if self.rope is not None:
      object.__setattr__(self, "rope", from_dict(RopeConfig, self.rope, "stages.rope."))
    unknown = sorted(set(self.data) - {f.name for f in dataclasses.fields(DataConfig)})
    if unknown:
      raise ConfigError(f"unknown key(s) {unknown} in stages.data; accepted: "
                        f"{sorted(f.name for f in dataclasses.fields(DataConfig))}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """A training run.

  Attributes:
    model, data, optimizer, checkpoint, mesh: as above.  stages: the schedule (empty = one stage).
    steps: total optimizer steps.  grad_accum: microbatches per step (the batch splits along B).
    remat: name in `lcjax.memory.remat.REMAT_POLICIES`; remat_save / remat_offload: activation names.
    seed: init seed.  log_every: metrics interval.  stop_at: end this process at that step (0 = steps) without
    changing the schedule.  num_devices: devices of the mesh (0 = all).  peak_flops: per-device FLOP/s for MFU
    (0 = measured on CPU).  progress: rich progress bar.
  """

  model: ModelConfig
  data: DataConfig
  optimizer: OptimizerConfig = OptimizerConfig()
  checkpoint: CheckpointConfig = CheckpointConfig()
  mesh: MeshConfig = MeshConfig()
  stages: tuple[StageConfig, ...] = ()
  steps: int = 100
  grad_accum: int = 1
  remat: str = "none"
  remat_save: tuple[str, ...] = ()
  remat_offload: tuple[str, ...] = ()
  seed: int = 0
  log_every: int = 1
  stop_at: int = 0
  num_devices: int = 0
  peak_flops: float = 0.0
  progress: bool = False

  def __post_init__(self):
    stages = tuple(from_dict(StageConfig, s, "stages.") for s in self.stages)
    object.__setattr__(self, "stages", stages)
    if self.steps < 1 or self.grad_accum < 1:
      raise ConfigError(f"steps and grad_accum must be >= 1, got {self.steps}, {self.grad_accum}")
    starts = [s.start for s in stages]
    if stages and (starts[0] != 0 or starts != sorted(set(starts))):
      raise ConfigError(f"stage starts must begin at 0 and increase, got {starts}")


def train_config(d) -> TrainConfig:
  """A TrainConfig from a mapping / ConfigDict (the `train` section of an experiment)."""
  return from_dict(TrainConfig, d, "train.")
