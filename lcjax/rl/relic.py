"""ReLIC's in-context RL pieces (Elawady et al. 2024; alignment_rl.md §5): episode-aware positions over a trial,
GAE, and the partial-update schedule.

  episode_positions(dones [B, T]) -> (positions [B, T], episode [B, T])   step within its episode (0 at each
      episode start) and episode index within the trial; episode doubles as segment_ids when inter-episode
      attention is off (block-causal document mask)
  gae(rewards, values, dones [B, T], last_value [B], gamma, lam) -> (advantages, returns) [B, T]
  partial_update_windows(T, U, full_updates) -> U loss windows (start, stop): update k at t = k T / U trains on
      the prefix [0, t) with the loss on [t_prev, t), or on [0, t) for a full update
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lcjax.errors import ConfigError


def episode_positions(dones: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Within-episode step index and episode index [B, T] (int32) from `dones` [B, T] (done[t]: step t ends its
  episode, so step t + 1 starts the next)."""
  dones = dones.astype(jnp.int32)
  starts = jnp.pad(dones[:, :-1], ((0, 0), (1, 0)))              # 1 where a new episode begins (after a done)
  episode = jnp.cumsum(starts, axis=1).astype(jnp.int32)
  t = jnp.arange(dones.shape[1], dtype=jnp.int32)
  first = jax.lax.cummax(jnp.where(starts > 0, t, 0), axis=1)     # index of the current episode's first step
  return (t - first).astype(jnp.int32), episode


def gae(rewards, values, dones, last_value, gamma: float, lam: float):
  """Generalised advantage estimation along T (no bootstrap across a done).

  delta_t = r_t + gamma V_{t+1} (1 - d_t) - V_t;  A_t = delta_t + gamma lam (1 - d_t) A_{t+1};  returns = A + V.
  Args:
    rewards, values, dones: [B, T].  last_value: [B] value of the state after step T - 1.
  """
  not_done = 1.0 - dones.astype(jnp.float32)
  next_values = jnp.concatenate([values[:, 1:], last_value[:, None]], axis=1)
  deltas = rewards + gamma * next_values * not_done - values

  def back(carry, x):
    delta, nd = x
    carry = delta + gamma * lam * nd * carry
    return carry, carry

  _, adv = jax.lax.scan(back, jnp.zeros_like(last_value, jnp.float32), (deltas.T, not_done.T), reverse=True)
  adv = adv.T
  return adv, adv + values


def partial_update_windows(steps: int, updates: int, full_updates: int = 0) -> list[tuple[int, int, int]]:
  """(prefix end t, loss start, loss stop) of each of the U updates of a T-step rollout.

  With full_updates = 0 the loss windows partition [0, T); with f > 0 every (U / f)-th update (the last one among
  them) is a full update whose loss covers [0, t). U = 1 is ordinary PPO on the whole rollout.
  Raises:
    ConfigError: U does not divide T, or f is not in [0, U] or does not divide U.
  """
  if updates < 1 or steps % updates:
    raise ConfigError(f"updates_per_rollout={updates} must be >= 1 and divide the rollout length {steps}")
  if not 0 <= full_updates <= updates or (full_updates and updates % full_updates):
    raise ConfigError(f"full_updates_per_rollout={full_updates} must be in [0, {updates}] and divide {updates}")
  every = updates // full_updates if full_updates else 0
  out = []
  for k in range(1, updates + 1):
    t, prev = k * steps // updates, (k - 1) * steps // updates
    full = bool(every) and k % every == 0
    out.append((t, 0 if full else prev, t))
  return out
