"""Rotary position embedding (RoPE) and the registry of context-extension scalings.

RoPE rotates each pair (x_i, x_{i+H/2}) of a head by angle p * w_i at position p (the "rotate-half" layout used by
HF Llama; GGUF's interleaved Q/K rows are un-permuted at import). A scaling changes the frequencies
w_i (and may return an attention factor that multiplies cos and sin). With base b and head dim H:

  none   w_i = b^(-2i/H)
  linear w_i = b^(-2i/H) / s                                    position interpolation (Chen et al. 2023)
  ntk    w_i = (b * s^(H/(H-2)))^(-2i/H)                        NTK-aware base change (bloc97)
  yarn   w_i = r_i * w_i^none / s + (1 - r_i) * w_i^none,  r_i = clip((d_i - lo) / (hi - lo), 0, 1) with
         d_i = i (pair index), lo/hi = H * ln(L_orig / (beta * 2 pi)) / (2 ln b) for beta_fast / beta_slow
         (floored / ceiled), and attention factor 0.1 ln s + 1                (Peng et al. 2023, YaRN)
  llama3 lambda_i = 2 pi / w_i;  w_i / s if lambda_i > L_orig / low_freq_factor;  w_i if lambda_i < L_orig /
         high_freq_factor;  else (1 - u) w_i / s + u w_i with u = (L_orig / lambda_i - low) / (high - low)
  abf    w_i = b'^(-2i/H) with the adjusted base b' = new_theta  (Xiong et al. 2023, Llama 2 Long)
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lcjax.config import RopeConfig
from lcjax.errors import ConfigError
from lcjax.registry import Registry

# A scaling maps (config, head_dim, trained context) -> (inverse frequencies [H/2] float64, attention factor).
RopeScaling = Callable[[RopeConfig, int, int], tuple[np.ndarray, float]]
ROPE_SCALINGS: Registry[RopeScaling] = Registry("RoPE scaling")


def _base_inv_freq(base: float, head_dim: int) -> np.ndarray:
  return 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def _need_factor(cfg: RopeConfig, name: str) -> float:
  if cfg.factor < 1.0:
    raise ConfigError(f"RoPE scaling {name!r} needs factor >= 1, got {cfg.factor}")
  return cfg.factor


def _original_context(cfg: RopeConfig, max_seq_len: int) -> int:
  return cfg.original_context or max_seq_len


@ROPE_SCALINGS.register("none")
def _none(cfg: RopeConfig, head_dim: int, max_seq_len: int):
  """Plain RoPE: w_i = b^(-2i/H)."""
  return _base_inv_freq(cfg.theta, head_dim), 1.0


@ROPE_SCALINGS.register("linear")
def _linear(cfg: RopeConfig, head_dim: int, max_seq_len: int):
  """Position interpolation: w_i / s."""
  return _base_inv_freq(cfg.theta, head_dim) / _need_factor(cfg, "linear"), 1.0


@ROPE_SCALINGS.register("ntk")
def _ntk(cfg: RopeConfig, head_dim: int, max_seq_len: int):
  """NTK-aware: base b * s^(H/(H-2))."""
  s = _need_factor(cfg, "ntk")
  return _base_inv_freq(cfg.theta * s ** (head_dim / (head_dim - 2)), head_dim), 1.0


@ROPE_SCALINGS.register("yarn")
def _yarn(cfg: RopeConfig, head_dim: int, max_seq_len: int):
  """YaRN: per-frequency ramp between interpolation and extrapolation, attention factor 0.1 ln s + 1."""
  s = _need_factor(cfg, "yarn")
  original = _original_context(cfg, max_seq_len)

  def correction_dim(rotations: float) -> float:
    return head_dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(cfg.theta))

  low = max(math.floor(correction_dim(cfg.beta_fast)), 0)
  high = min(math.ceil(correction_dim(cfg.beta_slow)), head_dim - 1)
  if low == high:
    high += 0.001  # avoid a zero-width ramp
  ramp = np.clip((np.arange(head_dim // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
  extrapolation_weight = 1.0 - ramp
  inv = _base_inv_freq(cfg.theta, head_dim)
  inv_freq = inv / s * (1.0 - extrapolation_weight) + inv * extrapolation_weight
  return inv_freq, 0.1 * math.log(s) + 1.0


@ROPE_SCALINGS.register("llama3")
def _llama3(cfg: RopeConfig, head_dim: int, max_seq_len: int):
  """Llama 3.1: low frequencies interpolated by s, high kept, a smooth band between."""
  s = _need_factor(cfg, "llama3")
  original = _original_context(cfg, max_seq_len)
  inv = _base_inv_freq(cfg.theta, head_dim)
  wavelen = 2 * math.pi / inv
  low_wavelen, high_wavelen = original / cfg.low_freq_factor, original / cfg.high_freq_factor
  smooth = (original / wavelen - cfg.low_freq_factor) / (cfg.high_freq_factor - cfg.low_freq_factor)
  blended = (1 - smooth) * inv / s + smooth * inv
  out = np.where(wavelen > low_wavelen, inv / s, np.where(wavelen < high_wavelen, inv, blended))
  return out, 1.0


@ROPE_SCALINGS.register("abf")
def _abf(cfg: RopeConfig, head_dim: int, max_seq_len: int):
  """Adjusted base frequency: w_i = b'^(-2i/H)."""
  if cfg.new_theta <= 0:
    raise ConfigError("RoPE scaling 'abf' needs new_theta > 0 (e.g. 500000.0)")
  return _base_inv_freq(cfg.new_theta, head_dim), 1.0


def rope_frequencies(cfg: RopeConfig, head_dim: int, max_seq_len: int) -> tuple[np.ndarray, float]:
  """Inverse frequencies [H/2] (float64) and attention factor for `cfg.scaling`."""
  return ROPE_SCALINGS.get(cfg.scaling)(cfg, head_dim, max_seq_len)


def extends_context(cfg: RopeConfig) -> bool:
  """Whether the scaling is meant to run past the trained context."""
  return cfg.scaling != "none"


def rope_cos_sin(positions: jax.Array, inv_freq: np.ndarray, attention_factor: float = 1.0):
  """cos and sin tables for the rotate-half layout.

  Args:
    positions: [B, T] integer positions.  inv_freq: [H/2].
  Returns:
    (cos, sin), each [B, T, H] fp32, already multiplied by the attention factor.
  """
  angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq, jnp.float32)
  angles = jnp.concatenate([angles, angles], axis=-1)
  return jnp.cos(angles) * attention_factor, jnp.sin(angles) * attention_factor


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """Rotates heads: x * cos + rotate_half(x) * sin.

  Args:
    x: [B, T, N, H].  cos, sin: [B, T, H].
  Returns:
    [B, T, N, H] in x's dtype.
  """
  half = x.shape[-1] // 2
  x32 = x.astype(jnp.float32)
  rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
  return (x32 * cos[:, :, None] + rotated * sin[:, :, None]).astype(x.dtype)
