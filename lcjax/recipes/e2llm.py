"""E^2-LLM (Liu et al. 2024): train once at a short length R with RoPE scale and position-offset augmentation, so
one run serves several inference lengths L = g R by position interpolation with scale g.

Per training sample (packed row) the augmentation draws
  a scale g ~ Uniform(scales)                          (the "scale parameter" of PI: RoPE angle = w_i p / g)
  a position offset t ~ Uniform{0, ..., (g - 1) R}      (indices i + t for i < R stay inside [0, g R), so the
                                                         interpolated positions (i + t) / g cover [0, R))
and the model rotates q and k by (position + t) / g (`Llama.hidden(rope_scale=g)`). At inference at length L the
model uses `RopeConfig(scaling="linear", factor=L / R)`. With scales=(1,) and offset off the rows are unchanged
(rope_scale = 1 exactly), so training equals the plain run.
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np

from lcjax.config import RopeConfig, from_dict
from lcjax.data.pipeline import AUGMENTATIONS
from lcjax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class E2Config:
  """Augmentation distribution. Attributes: scales (the g values, sampled uniformly; the paper trains at R = 4K
  for windows up to 16x), offset (draw the position offset t)."""

  scales: tuple[float, ...] = tuple(float(g) for g in range(1, 17))
  offset: bool = True

  def __post_init__(self):
    if not self.scales or min(self.scales) < 1.0:
      raise ConfigError(f"E2-LLM scales must be a non-empty list of values >= 1, got {self.scales}")


def sample_augmentation(cfg: E2Config, seq_len: int, rng: np.random.Generator) -> tuple[float, int]:
  """(scale g, offset t) for one sample of length R = seq_len."""
  g = float(cfg.scales[rng.integers(len(cfg.scales))])
  t = int(rng.integers(0, int((g - 1.0) * seq_len) + 1)) if cfg.offset else 0
  return g, t


def augment_row(row: dict, cfg: E2Config, rng: np.random.Generator) -> dict:
  """A packed row with positions shifted by t and `rope_scale` = g (a float32 scalar, [B] after batching)."""
  g, t = sample_augmentation(cfg, len(row["tokens"]), rng)
  return {**row, "positions": (row["positions"] + t).astype(np.int32), "rope_scale": np.float32(g)}


@AUGMENTATIONS.register("e2llm", caps={"stage": "rows"})
def e2llm_augmentation(ds: grain.IterDataset, options: dict, seed: int, seq_len: int) -> grain.IterDataset:
  """grain stage: per-row random RoPE scale and position offset (options: E2Config fields)."""
  cfg = from_dict(E2Config, options, "augment_options.e2llm.")
  return ds.random_map(lambda row, rng: augment_row(row, cfg, rng), seed=seed)


def inference_rope(base: RopeConfig, train_len: int, eval_len: int) -> RopeConfig:
  """The RoPE config for evaluating an E^2-LLM model at `eval_len`: linear interpolation by eval_len / train_len
  (plain RoPE at or below the trained length)."""
  factor = eval_len / train_len
  if factor <= 1.0:
    return base
  return dataclasses.replace(base, scaling="linear", factor=factor)
