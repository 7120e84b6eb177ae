"""JAX environments in the gymnax API (registry `ENVS`), for in-context RL (ReLIC).

The gymnax convention (written here without depending on gymnax):
  obs, state = env.reset(key, params)
  obs, state, reward, done, info = env.step(key, state, action, params)   (auto-resets when done)
Pure functions of pytrees, so `jax.vmap` over envs and `lax.scan` over steps. A *trial* keeps `params` (the task:
Darkroom's goal) fixed across episodes; only the state resets.

Darkroom (DPT, Lee et al. 2023; ReLIC's custom_envs/darkroom.py): a dim x dim grid, start (0, 0), 5 actions
(x+1, x-1, y+1, y-1, stay), reward 1 on every step that ends on the goal, episodes of `horizon` steps, blind
observation = the cell index y * dim + x. Optimal episode return: horizon - max(gx + gy, 1) + 1.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lcjax.errors import ConfigError
from lcjax.registry import Registry

ENVS: Registry[type] = Registry("environment")

_MOVES = jnp.array([[1, 0], [-1, 0], [0, 1], [0, -1], [0, 0]], jnp.int32)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DarkroomParams:
  """goal: [2] int32 (x, y) — the task of a trial."""

  goal: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DarkroomState:
  """pos: [2] int32; time: int32 steps taken in this episode."""

  pos: jax.Array
  time: jax.Array


@ENVS.register("darkroom")
@dataclasses.dataclass(frozen=True)
class Darkroom:
  """Darkroom grid world (see the module docstring). dim: grid side; horizon: steps per episode."""

  dim: int = 5
  horizon: int = 15
  num_actions: int = 5

  def __post_init__(self):
    if self.dim < 2 or self.horizon < 1:
      raise ConfigError(f"darkroom needs dim >= 2 and horizon >= 1, got dim={self.dim}, horizon={self.horizon}")

  @property
  def num_observations(self) -> int:
    return self.dim * self.dim

  def goals(self) -> jax.Array:
    """All dim^2 goals [dim^2, 2] (x, y), in cell-index order."""
    y, x = jnp.divmod(jnp.arange(self.dim * self.dim, dtype=jnp.int32), self.dim)
    return jnp.stack([x, y], -1)

  def optimal_return(self, params: DarkroomParams) -> jax.Array:
    return self.horizon - jnp.maximum(params.goal.sum(-1), 1) + 1

  def _obs(self, state: DarkroomState) -> jax.Array:
    return state.pos[1] * self.dim + state.pos[0]

  def reset_env(self, key, params: DarkroomParams):
    del key, params
    state = DarkroomState(jnp.zeros((2,), jnp.int32), jnp.int32(0))
    return self._obs(state), state

  def step_env(self, key, state: DarkroomState, action, params: DarkroomParams):
    del key
    pos = jnp.clip(state.pos + _MOVES[action], 0, self.dim - 1)
    state = DarkroomState(pos, state.time + 1)
    reward = jnp.all(pos == params.goal).astype(jnp.float32)
    done = state.time >= self.horizon
    return self._obs(state), state, reward, done, {}

  def reset(self, key, params: DarkroomParams):
    """(obs int32, state) at the start of an episode."""
    return self.reset_env(key, params)

  def step(self, key, state: DarkroomState, action, params: DarkroomParams):
    """(obs, state, reward, done, info); when done, obs and state are the next episode's first (auto-reset)."""
    k_step, k_reset = jax.random.split(key)
    obs, state, reward, done, info = self.step_env(k_step, state, action, params)
    obs_r, state_r = self.reset_env(k_reset, params)
    state = jax.tree.map(lambda r, s: jnp.where(done, r, s), state_r, state)
    return jnp.where(done, obs_r, obs), state, reward, done, info


def make_env(name: str, **options):
  """An instance of the registered environment `name` (unknown names or options raise)."""
  return ENVS.instantiate(name, **options)
