"""Policy-gradient losses for RL on sequences (registry `POLICY_LOSSES`) and group-normalised advantages.

Shapes: G responses per prompt, P prompts, B = P * G rows, T response tokens per row.

  loss_fn(logp [B, T], old_logp [B, T], adv [B], mask [B, T], cfg) -> (loss, metrics)

`logp` is log π_θ(o_t | q, o_<t) of the sampled tokens (carries the gradient), `old_logp` the rollout policy's
(π_θold, a constant), `adv` one advantage per response (the same for every token), `mask` 1 on response tokens.

Losses (loss = −J; ratio r = exp(logp − old_logp), log r clamped to ±20 before exp):
  reinforce  −Σ Â·logp / N                                     N = Σ mask (token-level, over the whole batch)
  ppo_clip   −Σ_i (1/|o_i|) Σ_t min(r Â, clip(r, 1−ε_low, 1+ε_high) Â) / B    (per-sequence mean, then mean)
  grpo       −Σ min(r Â, clip(r, 1−ε_low, 1+ε_high) Â) / N   (token-level, as in DAPO / MiniMax-M1's comparison)
  dapo       grpo with ε_low ≠ ε_high (clip-higher) and dynamic sampling (zero-variance groups dropped upstream)
  cispo      −Σ M · sg(r̂) · Â · logp / N,  r̂ = clip(r, 1−ε_low, 1+ε_high)   (MiniMax-M1 eq. 6-7; M ≡ 1 unless
             cfg.mask_eps_* are set, then M = 0 on tokens with (Â>0, r>1+mask_eps_high) or (Â<0, r<1−mask_eps_low);
             with eps_high = inf, eps_low = 1 and the mask this is exactly the token-level PPO-clip gradient)

Metrics: clip_fraction (tokens whose r left [1−ε_low, 1+ε_high]), zero_grad_fraction (tokens whose loss gradient
is exactly zero: Â = 0, clipped or masked), clipped_zero_grad_fraction (those with Â ≠ 0 that clipping / the
eq. 7 mask silenced: what CISPO removes), kl_rollout (k3 estimator of KL(π_θold || π_θ) = E[r − 1 − log r]).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from lcjax.errors import ConfigError, ShapeError
from lcjax.registry import Registry

POLICY_LOSSES: Registry[Callable] = Registry("policy loss")

LOG_RATIO_CLAMP = 20.0


@dataclasses.dataclass(frozen=True)
class PolicyLossConfig:
  """Clip ranges of the ratio (or of the IS weight for CISPO).

  Attributes:
    eps_low: lower clip: r is clipped below at 1 − eps_low. In [0, 1]; 1 means no lower bound (r > 0 anyway).
    eps_high: upper clip: r is clipped above at 1 + eps_high. > 0; use `float('inf')` for none.
    mask_eps_low, mask_eps_high: CISPO only, both or neither: the PPO clip range of eq. 7's token mask M (zero on
      tokens PPO-clip would give no gradient); None = M ≡ 1 (plain CISPO).
  Both eps values are required: MiniMax-M1 does not publish ε_high and framework defaults differ 20x.
  """

  eps_low: float
  eps_high: float
  mask_eps_low: float | None = None
  mask_eps_high: float | None = None

  def __post_init__(self):
    _check_eps("eps", self.eps_low, self.eps_high)
    if (self.mask_eps_low is None) != (self.mask_eps_high is None):
      raise ConfigError(f"set both mask_eps_low and mask_eps_high or neither, got {self.mask_eps_low}, "
                        f"{self.mask_eps_high}")
    if self.mask_eps_low is not None:
      _check_eps("mask_eps", self.mask_eps_low, self.mask_eps_high)


def _check_eps(name: str, low, high):
  if not isinstance(low, (int, float)) or not 0.0 <= low <= 1.0:
    raise ConfigError(f"{name}_low must be a number in [0, 1] (1 = no lower bound), got {low!r}")
  if not isinstance(high, (int, float)) or not high > 0.0:
    raise ConfigError(f"{name}_high must be a number > 0 (inf = no upper bound), got {high!r}")


def group_advantages(rewards: jax.Array, group_size: int, eps: float = 1e-6) -> jax.Array:
  """GRPO advantages Â_i = (R_i − mean_group R) / (std_group R + eps), population std (ddof = 0).

  Args:
    rewards: [B] with B = P * G, rows of one prompt contiguous.  group_size: G.
  Returns:
    [B] fp32; each group sums to 0; a constant-reward group gives exactly 0 (no NaN).
  """
  rewards = jnp.asarray(rewards, jnp.float32)
  if rewards.ndim != 1 or rewards.shape[0] % group_size:
    raise ShapeError(f"rewards must be [P * G] with G={group_size} dividing it, got shape {rewards.shape}")
  r = rewards.reshape(-1, group_size)
  centred = r - r.mean(axis=1, keepdims=True)
  std = jnp.sqrt(jnp.mean(centred ** 2, axis=1, keepdims=True))
  return (centred / (std + eps)).reshape(-1)


def nonzero_variance_groups(rewards, group_size: int):
  """[P] bool: groups whose rewards are not all equal (DAPO dynamic sampling keeps only these)."""
  r = jnp.asarray(rewards, jnp.float32).reshape(-1, group_size)
  return jnp.any(r != r[:, :1], axis=1)


def _ratio(logp, old_logp):
  log_r = jnp.clip(logp - jax.lax.stop_gradient(old_logp), -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
  return jnp.exp(log_r), log_r


def _check(logp, old_logp, adv, mask):
  if logp.shape != old_logp.shape or logp.shape != mask.shape or logp.ndim != 2 or adv.shape != logp.shape[:1]:
    raise ShapeError(f"policy loss wants logp, old_logp, mask [B, T] and adv [B]; got {logp.shape}, "
                     f"{old_logp.shape}, {mask.shape}, {adv.shape}")


def _metrics(loss, r, log_r, adv, mask, zero_grad):
  """Scalar metrics over the masked tokens."""
  n = jnp.maximum(jnp.sum(mask), 1.0)
  r = jax.lax.stop_gradient(r)
  log_r = jax.lax.stop_gradient(log_r)
  nonzero_adv = (adv[:, None] != 0).astype(jnp.float32)
  return {"loss": loss, "tokens": jnp.sum(mask),
          "zero_grad_fraction": jnp.sum(zero_grad * mask) / n,
          "clipped_zero_grad_fraction": jnp.sum(zero_grad * mask * nonzero_adv) / n,
          "kl_rollout": jnp.sum((r - 1.0 - log_r) * mask) / n,
          "ratio_mean": jnp.sum(r * mask) / n,
          "adv_mean": jnp.sum(adv[:, None] * mask) / n}


def _clip_fraction(r, cfg, mask):
  r = jax.lax.stop_gradient(r)
  out = ((r > 1.0 + cfg.eps_high) | (r < 1.0 - cfg.eps_low)).astype(jnp.float32)
  return jnp.sum(out * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _ppo_terms(logp, old_logp, adv, mask, cfg):
  """Per-token clipped surrogate min(r Â, clip(r) Â) [B, T] and the tokens PPO gives no gradient."""
  r, log_r = _ratio(logp, old_logp)
  a = adv[:, None]
  clipped = jnp.clip(r, 1.0 - cfg.eps_low, 1.0 + cfg.eps_high)
  surrogate = jnp.minimum(r * a, clipped * a)
  zero = ((a > 0) & (r > 1.0 + cfg.eps_high)) | ((a < 0) & (r < 1.0 - cfg.eps_low)) | (a == 0)
  return surrogate, r, log_r, zero.astype(jnp.float32)


@POLICY_LOSSES.register("reinforce")
def reinforce_loss(logp, old_logp, adv, mask, cfg: PolicyLossConfig | None = None):
  """REINFORCE with given advantages, token-level mean: −Σ Â·logp / Σ mask (on-policy; old_logp only logged)."""
  _check(logp, old_logp, adv, mask)
  mask = mask.astype(jnp.float32)
  n = jnp.maximum(jnp.sum(mask), 1.0)
  loss = -jnp.sum(adv[:, None] * logp * mask) / n
  r, log_r = _ratio(logp, old_logp)
  zero = jnp.broadcast_to((adv[:, None] == 0).astype(jnp.float32), mask.shape)
  return loss, {**_metrics(loss, r, log_r, adv, mask, zero), "clip_fraction": jnp.zeros(())}


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip_loss(logp, old_logp, adv, mask, cfg: PolicyLossConfig):
  """PPO-clip surrogate, per-sequence mean over tokens then mean over sequences (original GRPO aggregation)."""
  _check(logp, old_logp, adv, mask)
  mask = mask.astype(jnp.float32)
  surrogate, r, log_r, zero = _ppo_terms(logp, old_logp, adv, mask, cfg)
  per_seq = jnp.sum(surrogate * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
  loss = -jnp.mean(per_seq)
  return loss, {**_metrics(loss, r, log_r, adv, mask, zero), "clip_fraction": _clip_fraction(r, cfg, mask)}


def _token_level_clip(logp, old_logp, adv, mask, cfg):
  _check(logp, old_logp, adv, mask)
  mask = mask.astype(jnp.float32)
  surrogate, r, log_r, zero = _ppo_terms(logp, old_logp, adv, mask, cfg)
  loss = -jnp.sum(surrogate * mask) / jnp.maximum(jnp.sum(mask), 1.0)
  return loss, {**_metrics(loss, r, log_r, adv, mask, zero), "clip_fraction": _clip_fraction(r, cfg, mask)}


@POLICY_LOSSES.register("grpo")
def grpo_loss(logp, old_logp, adv, mask, cfg: PolicyLossConfig):
  """GRPO's clipped surrogate with token-level normalisation (1/Σ|o_i|), no KL term (as MiniMax-M1 compares)."""
  return _token_level_clip(logp, old_logp, adv, mask, cfg)


@POLICY_LOSSES.register("dapo")
def dapo_loss(logp, old_logp, adv, mask, cfg: PolicyLossConfig):
  """DAPO: token-level clipped surrogate with clip-higher (ε_high > ε_low typical, e.g. 0.2 / 0.28); its dynamic
  sampling (drop zero-variance groups) is `nonzero_variance_groups`, applied by the caller before batching."""
  return _token_level_clip(logp, old_logp, adv, mask, cfg)


@POLICY_LOSSES.register("cispo")
def cispo_loss(logp, old_logp, adv, mask, cfg: PolicyLossConfig):
  """CISPO (MiniMax-M1 eq. 4-7): −Σ M·sg(clip(r, 1−ε_low, 1+ε_high))·Â·logp / Σ mask; every token keeps its
  gradient (M ≡ 1) unless cfg.mask_eps_* apply eq. 7's mask."""
  _check(logp, old_logp, adv, mask)
  mask = mask.astype(jnp.float32)
  r, log_r = _ratio(logp, old_logp)
  a = adv[:, None]
  weight = jax.lax.stop_gradient(jnp.clip(r, 1.0 - cfg.eps_low, 1.0 + cfg.eps_high))
  token_mask = mask
  if cfg.mask_eps_low is not None:
    rc = jax.lax.stop_gradient(r)
    clipped = ((a > 0) & (rc > 1.0 + cfg.mask_eps_high)) | ((a < 0) & (rc < 1.0 - cfg.mask_eps_low))
    token_mask = mask * (1.0 - clipped.astype(jnp.float32))
  n = jnp.maximum(jnp.sum(mask), 1.0)
  loss = -jnp.sum(token_mask * weight * a * logp) / n
  zero = jnp.maximum(jnp.broadcast_to(a == 0, mask.shape).astype(jnp.float32), mask - token_mask)
  return loss, {**_metrics(loss, r, log_r, adv, mask, zero), "clip_fraction": _clip_fraction(r, cfg, mask)}


def policy_loss(name: str) -> Callable:
  """The registered loss `name` (raises `UnknownNameError` listing the known ones)."""
  return POLICY_LOSSES.get(name)
