"""ReLIC pieces: episode-aware positions, GAE, partial-update windows, Darkroom in the gymnax API."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lcjax.errors import ConfigError, UnknownNameError
from lcjax.models.build import init_model
from lcjax.rl.envs import DarkroomParams, make_env
from lcjax.rl.relic import episode_positions, gae, partial_update_windows
from tests.tiny import TINY


def test_episode_positions():
  dones = jnp.array([[0, 0, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0, 1]])
  pos, ep = episode_positions(dones)
  np.testing.assert_array_equal(pos, [[0, 1, 2, 0, 1, 0, 1], [0, 0, 1, 2, 3, 4, 5]])
  np.testing.assert_array_equal(ep, [[0, 0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 1, 1, 1]])


def test_inter_episode_attention_off_is_block_causal():
  """With episode ids as segment ids and within-episode positions, a later episode's outputs equal the model run
  on that episode alone (no attention across the boundary)."""
  graphdef, params = nnx.split(init_model(TINY, 0))
  model = jax.jit(lambda t, p, s=None: nnx.merge(graphdef, params)(t, p, segment_ids=s))
  tokens = jax.random.randint(jax.random.PRNGKey(0), (1, 12), 3, 90)
  dones = jnp.zeros((1, 12), jnp.int32).at[0, 4].set(1)
  pos, ep = episode_positions(dones)
  full, _ = model(tokens, pos, ep)
  alone, _ = model(tokens[:, 5:], pos[:, 5:])
  np.testing.assert_allclose(full[:, 5:], alone, atol=1e-5)
  mixed, _ = model(tokens, jnp.arange(12)[None])  # inter-episode attention on: differs
  assert float(jnp.abs(mixed[:, 5:] - alone).max()) > 1e-3


def test_gae_matches_loop():
  r = np.random.default_rng(0)
  rew, val = r.normal(size=(2, 9)), r.normal(size=(2, 9))
  dones = (r.random((2, 9)) < 0.3).astype(np.float32)
  last = r.normal(size=2)
  gamma, lam = 0.99, 0.95
  adv, ret = gae(jnp.asarray(rew), jnp.asarray(val), jnp.asarray(dones), jnp.asarray(last), gamma, lam)
  ref = np.zeros((2, 9))
  for b in range(2):
    a = 0.0
    for t in reversed(range(9)):
      nv = last[b] if t == 8 else val[b, t + 1]
      delta = rew[b, t] + gamma * nv * (1 - dones[b, t]) - val[b, t]
      a = delta + gamma * lam * (1 - dones[b, t]) * a
      ref[b, t] = a
  np.testing.assert_allclose(adv, ref, atol=1e-5)
  np.testing.assert_allclose(ret, ref + val, atol=1e-5)


def test_partial_update_windows():
  assert partial_update_windows(90, 1) == [(90, 0, 90)]  # U = 1: ordinary PPO on the whole rollout
  w = partial_update_windows(90, 3)
  assert w == [(30, 0, 30), (60, 30, 60), (90, 60, 90)]
  covered = sorted(t for _, a, b in w for t in range(a, b))
  assert covered == list(range(90))  # the loss windows partition [0, T)
  assert partial_update_windows(8, 4, full_updates=1)[-1] == (8, 0, 8)
  assert partial_update_windows(8, 4, full_updates=2) == [(2, 0, 2), (4, 0, 4), (6, 4, 6), (8, 0, 8)]
  with pytest.raises(ConfigError, match="divide"):
    partial_update_windows(90, 4)
  with pytest.raises(ConfigError, match="full_updates"):
    partial_update_windows(90, 3, full_updates=2)


def test_darkroom_gymnax_api_optimal_policy_and_vmap():
  env = make_env("darkroom", dim=5, horizon=15)
  params = DarkroomParams(jnp.array([2, 3], jnp.int32))
  key = jax.random.PRNGKey(0)
  obs, state = env.reset(key, params)
  assert int(obs) == 0
  env_step = jax.jit(env.step)
  plan = [0, 0, 2, 2, 2] + [4] * 10  # x+1 twice, y+1 three times, then stay
  total, dones = 0.0, []
  for a in plan:
    obs, state, r, d, _ = env_step(key, state, jnp.int32(a), params)
    total += float(r)
    dones.append(bool(d))
  assert total == float(env.optimal_return(params)) == 11.0
  assert dones == [False] * 14 + [True] and int(obs) == 0 and int(state.time) == 0  # auto-reset
  goals = env.goals()[jnp.array([7, 3, 12])]
  batch = DarkroomParams(goals)
  _, st = jax.vmap(env.reset, (None, 0))(key, batch)
  acts = jnp.array([0, 2, 4])
  step = jax.vmap(env.step, (None, 0, 0, 0))
  out = step(key, st, acts, batch)
  perm = jnp.array([2, 0, 1])
  out_p = step(key, jax.tree.map(lambda x: x[perm], st), acts[perm], DarkroomParams(goals[perm]))
  for a, b in zip(jax.tree.leaves(out[:4]), jax.tree.leaves(out_p[:4])):
    np.testing.assert_array_equal(np.asarray(a)[perm], b)  # permuting envs permutes the outputs
  with pytest.raises(UnknownNameError):
    make_env("darkrom")
  with pytest.raises(ConfigError, match="horizon"):
    make_env("darkroom", horizon=0)
  with pytest.raises(ConfigError, match="accepted"):
    make_env("darkroom", size=3)
