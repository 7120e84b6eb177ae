"""Token sampling: greedy, temperature, top-k and top-p (nucleus), always from an explicit PRNG key."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lcjax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """How the next token is chosen.

  Attributes:
    temperature: 0 means greedy (argmax); otherwise logits are divided by it.
    top_k: keep the k most likely tokens (0: all).
    top_p: keep the smallest set of tokens whose probability reaches p (1.0: all).
  """

  temperature: float = 0.0
  top_k: int = 0
  top_p: float = 1.0

  def __post_init__(self):
    if not self.temperature >= 0 or self.temperature == float("inf"):  # NaN fails >= too
      raise ConfigError(f"temperature must be finite and >= 0, got {self.temperature}")
    if self.top_k < 0:
      raise ConfigError(f"top_k must be >= 0, got {self.top_k}")
    if not 0.0 < self.top_p <= 1.0:
      raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")


def filter_logits(logits: jax.Array, top_k: int, top_p: float) -> jax.Array:
  """Masks logits [B, V] outside the top-k and the top-p nucleus with -inf."""
  if top_k > logits.shape[-1]:
    raise ConfigError(f"top_k={top_k} exceeds the vocabulary size {logits.shape[-1]}; accepted: 0..{logits.shape[-1]}")
  if top_k:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs  # probability of strictly more likely tokens
    keep = mass_before < top_p  # the most likely token is always kept
    threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


def sample(logits: jax.Array, key: jax.Array, cfg: SamplingConfig) -> jax.Array:
  """Next tokens from logits [B, V] -> [B] int32."""
  if cfg.temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = filter_logits(logits.astype(jnp.float32) / cfg.temperature, cfg.top_k, cfg.top_p)
  return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def sampled_logprobs(logits: jax.Array, tokens: jax.Array, cfg: SamplingConfig) -> jax.Array:
  """fp32 log-probabilities [B] of `tokens` [B] under the distribution `sample` draws from (logits [B, V] divided
  by the temperature and top-k / top-p filtered); greedy (temperature 0) reports the model's own log-softmax."""
  logits = logits.astype(jnp.float32)
  if cfg.temperature > 0.0:
    logits = filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p)
  logp = jax.nn.log_softmax(logits, axis=-1)
  return jnp.take_along_axis(logp, tokens[:, None].astype(jnp.int32), axis=-1)[:, 0]
