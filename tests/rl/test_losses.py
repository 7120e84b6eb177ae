"""Policy losses: gradient identities of MiniMax-M1's CISPO (arch_rl.md §2 invariants 1-6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import ConfigError, UnknownNameError
from lcjax.rl.losses import POLICY_LOSSES, PolicyLossConfig, group_advantages, nonzero_variance_groups

B, T, V, G = 4, 5, 7, 2


def _setup(seed=0):
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
  logits = jax.random.normal(k1, (B, T, V))
  tokens = jax.random.randint(k2, (B, T), 0, V)
  mask = jnp.ones((B, T)).at[1, 3:].set(0.0).at[3, 4:].set(0.0)  # ragged lengths
  adv = group_advantages(jnp.array([1.0, 0.0, 0.0, 1.0]), G)
  return logits, tokens, mask, adv


def _logp(logits, tokens):
  return jnp.take_along_axis(jax.nn.log_softmax(logits, -1), tokens[..., None], -1)[..., 0]


def _grad(name, cfg, logits, tokens, old_logp, adv, mask):
  fn = POLICY_LOSSES.get(name)
  return jax.grad(lambda l: fn(_logp(l, tokens), old_logp, adv, mask, cfg)[0])(logits)


CFG = PolicyLossConfig(eps_low=0.2, eps_high=0.28)


def test_on_policy_cispo_equals_reinforce_and_token_level_grpo():
  logits, tokens, mask, adv = _setup()
  old = jax.lax.stop_gradient(_logp(logits, tokens))
  g_cispo = _grad("cispo", CFG, logits, tokens, old, adv, mask)
  for name in ("reinforce", "grpo", "dapo"):
    np.testing.assert_allclose(g_cispo, _grad(name, CFG, logits, tokens, old, adv, mask), atol=1e-6)
  assert float(jnp.abs(g_cispo).max()) > 1e-3


def test_clipped_token_zero_for_ppo_bounded_for_cispo():
  logits, tokens, mask, adv = _setup()
  logp = _logp(logits, tokens)
  assert adv[0] > 0
  old = jax.lax.stop_gradient(logp).at[0, 0].add(-jnp.log(2.0))  # r[0, 0] = 2 > 1 + 0.28
  g_grpo = _grad("grpo", CFG, logits, tokens, old, adv, mask)
  g_ppo = _grad("ppo_clip", CFG, logits, tokens, old, adv, mask)
  assert float(jnp.abs(g_grpo[0, 0]).max()) == 0.0 and float(jnp.abs(g_ppo[0, 0]).max()) == 0.0
  g_cispo = _grad("cispo", CFG, logits, tokens, old, adv, mask)
  dlogp = jax.grad(lambda l: _logp(l, tokens)[0, 0])(logits)[0, 0]
  expect = -(1 + CFG.eps_high) * adv[0] * dlogp / mask.sum()
  np.testing.assert_allclose(g_cispo[0, 0], expect, atol=1e-6)
  # Mirror case: Â < 0 and r < 1 − ε_low.
  assert adv[1] < 0
  old = jax.lax.stop_gradient(logp).at[1, 0].add(jnp.log(2.0))  # r = 0.5
  assert float(jnp.abs(_grad("grpo", CFG, logits, tokens, old, adv, mask)[1, 0]).max()) == 0.0
  dlogp = jax.grad(lambda l: _logp(l, tokens)[1, 0])(logits)[1, 0]
  np.testing.assert_allclose(_grad("cispo", CFG, logits, tokens, old, adv, mask)[1, 0],
                             -(1 - CFG.eps_low) * adv[1] * dlogp / mask.sum(), atol=1e-6)


def test_unified_mask_reproduces_token_level_ppo_clip():
  logits, tokens, mask, adv = _setup()
  old = _logp(logits, tokens) + 0.4 * jax.random.normal(jax.random.PRNGKey(5), (B, T))  # many clipped tokens
  unified = PolicyLossConfig(eps_low=1.0, eps_high=float("inf"), mask_eps_low=0.2, mask_eps_high=0.28)
  g_u = _grad("cispo", unified, logits, tokens, old, adv, mask)
  np.testing.assert_allclose(g_u, _grad("grpo", CFG, logits, tokens, old, adv, mask), atol=1e-6)
  clip = POLICY_LOSSES.get("grpo")(_logp(logits, tokens), old, adv, mask, CFG)[1]["clip_fraction"]
  assert float(clip) > 0.2


def test_stop_gradient_equals_constant_weight():
  logits, tokens, mask, adv = _setup()
  old = _logp(logits, tokens) + 0.4 * jax.random.normal(jax.random.PRNGKey(6), (B, T))
  r_hat = jnp.clip(jnp.exp(_logp(logits, tokens) - old), 0.8, 1.28)
  const = jax.grad(lambda l: -jnp.sum(r_hat * adv[:, None] * _logp(l, tokens) * mask) / mask.sum())(logits)
  np.testing.assert_allclose(_grad("cispo", CFG, logits, tokens, old, adv, mask), const, atol=1e-6)


def test_metrics_zero_grad_fraction_and_kl():
  logits, tokens, mask, adv = _setup()
  logp = _logp(logits, tokens)
  old = logp.at[0, 0].add(-jnp.log(2.0))
  _, m_grpo = POLICY_LOSSES.get("grpo")(logp, old, adv, mask, CFG)
  _, m_cispo = POLICY_LOSSES.get("cispo")(logp, old, adv, mask, CFG)
  n = float(mask.sum())
  np.testing.assert_allclose(m_grpo["zero_grad_fraction"], 1 / n, rtol=1e-6)
  np.testing.assert_allclose(m_grpo["clipped_zero_grad_fraction"], 1 / n, rtol=1e-6)
  assert float(m_cispo["zero_grad_fraction"]) == 0.0 == float(m_cispo["clipped_zero_grad_fraction"])
  _, m_const = POLICY_LOSSES.get("cispo")(logp, old, jnp.zeros(B), mask, CFG)  # Â = 0: no gradient, none clipped
  assert float(m_const["zero_grad_fraction"]) == 1.0 and float(m_const["clipped_zero_grad_fraction"]) == 0.0
  np.testing.assert_allclose(m_cispo["clip_fraction"], 1 / n, rtol=1e-6)
  np.testing.assert_allclose(m_cispo["kl_rollout"], (2 - 1 - np.log(2)) / n, rtol=1e-5)


def test_group_advantages():
  rewards = jnp.array([1.0, 0.0, 0.0, 0.0, 3.0, 3.0, 3.0, 3.0])
  adv = group_advantages(rewards, 4)
  np.testing.assert_allclose(adv.reshape(2, 4).sum(1), 0.0, atol=1e-6)
  np.testing.assert_allclose(jnp.std(adv[:4]), 1.0, rtol=1e-4)
  assert np.all(np.asarray(adv[4:]) == 0.0)
  np.testing.assert_array_equal(nonzero_variance_groups(rewards, 4), [True, False])


def test_bad_config_and_names():
  with pytest.raises(ConfigError, match="eps_high"):
    PolicyLossConfig(eps_low=0.2, eps_high=0.0)
  with pytest.raises(ConfigError, match="eps_low"):
    PolicyLossConfig(eps_low=1.5, eps_high=0.2)
  with pytest.raises(ConfigError, match="mask_eps"):
    PolicyLossConfig(eps_low=0.2, eps_high=0.2, mask_eps_low=0.2)
  with pytest.raises(UnknownNameError, match="cispo"):
    POLICY_LOSSES.get("cipso")
