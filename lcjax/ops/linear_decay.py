"""Decay schedules of lightning attention (registry `DECAY_SCHEDULES`): per-head rates s_{l,h}, lambda = exp(-s).

Two incompatible published schedules exist, and loading weights needs the one they were trained with:

| name        | rate s_{l,h} (layer l of L, head h of N)                        | q scale | source                          |
|-------------|-----------------------------------------------------------------|---------|---------------------------------|
| minimax     | alibi_slope_h * (1 - l / (L - 1) + 1e-5)                        | 1       | MiniMax-M1 modeling L1235, L1348|
| transnormer | (8 / N) * (1 - l / L) * h   (head 0 never decays)               | 1/sqrt H| fla `lightning_attn/chunk.py`    |
| learnable   | exp(theta_h), a per-head parameter initialised to `minimax`     | 1       | (ours)                          |

ALiBi slopes (Press et al.): N a power of two gives 2^(-8 (h + 1) / N); otherwise the closest lower power of two c
gives the first c slopes and the rest are every other slope of 2c (`get_slopes(2c)[0::2]`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from lcjax.registry import Registry


@dataclasses.dataclass(frozen=True)
class DecaySchedule:
  """rates(num_heads, layer, num_layers) -> [N] float64; `scale(H)` multiplies q; `learnable`: a model param."""

  rates: Callable[[int, int, int], np.ndarray]
  scale: Callable[[int], float]
  learnable: bool = False


DECAY_SCHEDULES: Registry[DecaySchedule] = Registry("decay schedule")


def alibi_slopes(num_heads: int) -> np.ndarray:
  """ALiBi head slopes [N] as MiniMax's `_build_slope_tensor` computes them."""
  def power_of_2(n):
    start = 2 ** (-(2 ** -(math.log2(n) - 3)))
    return [start * start ** i for i in range(n)]

  if math.log2(num_heads).is_integer():
    return np.asarray(power_of_2(num_heads))
  c = 2 ** math.floor(math.log2(num_heads))
  return np.concatenate([power_of_2(c), alibi_slopes(2 * c)[0::2][:num_heads - c]])


def minimax_rates(num_heads: int, layer: int, num_layers: int) -> np.ndarray:
  """slope_h * (1 - l / (L - 1) + 1e-5); a one-layer model uses the l = 0 value."""
  depth = layer / (num_layers - 1) if num_layers > 1 else 0.0
  return alibi_slopes(num_heads) * (1.0 - depth + 1e-5)


def transnormer_rates(num_heads: int, layer: int, num_layers: int) -> np.ndarray:
  """(8 / N) (1 - l / L) h: fla's `chunk_lightning_attn` g_gamma, negated."""
  return (8.0 / num_heads) * (1.0 - layer / num_layers) * np.arange(num_heads, dtype=np.float64)


DECAY_SCHEDULES.register("minimax", DecaySchedule(minimax_rates, lambda h: 1.0),
                         doc="ALiBi slope x (1 - l/(L-1) + 1e-5), no q scale (MiniMax-01/M1)")
DECAY_SCHEDULES.register("transnormer", DecaySchedule(transnormer_rates, lambda h: 1.0 / math.sqrt(h)),
                         doc="(8/N)(1 - l/L) h, q scale 1/sqrt(H) (TransNormerLLM; fla lightning_attn)")
DECAY_SCHEDULES.register("learnable", DecaySchedule(minimax_rates, lambda h: 1.0, learnable=True),
                         doc="per-head learnable rate exp(theta), initialised to the minimax schedule")


def decay_rates(name: str, num_heads: int, layer: int, num_layers: int) -> np.ndarray:
  """The schedule `name`'s rates [N] for one layer (raises `UnknownNameError` for an unknown name)."""
  return np.asarray(DECAY_SCHEDULES.get(name).rates(num_heads, layer, num_layers), np.float64)
