"""Remat policies by name: gradients equal the no-remat gradients; named activations are saved, offloaded to the
host, or recomputed as the policy says; offload lowers to host placement for TPU and GPU."""

import contextlib
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.ad_checkpoint import checkpoint_name, print_saved_residuals

from lcjax.errors import ConfigError, UnknownNameError
from lcjax.memory.remat import ACTIVATION_NAMES, REMAT_POLICIES, remat, remat_policy


def _block(w, x):
  """Two tagged residual MLP layers: [T, D] -> scalar loss."""
  for i in range(2):
    x = checkpoint_name(x, "decoder_layer_input")
    h = checkpoint_name(jnp.tanh(x @ w[i, 0]), "mlp_hidden")
    x = x + checkpoint_name(jnp.sin(h @ w[i, 1]), "mlp_out")
  return jnp.sum(x**2)


W = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 8, 8)) * 0.3
X = jax.random.normal(jax.random.PRNGKey(1), (4, 8))


def _residuals(fn):
  buf = io.StringIO()
  with contextlib.redirect_stdout(buf):
    print_saved_residuals(fn, W, X)
  return buf.getvalue()


@pytest.mark.parametrize("name,kwargs", [
    ("none", {}), ("full", {}), ("save_dots", {}), ("save_names", {"save": ["mlp_hidden"]}),
    ("offload_names", {"save": ["mlp_out"], "offload": ["mlp_hidden", "decoder_layer_input"]}),
    ("offload_dots", {})])
def test_gradients_equal_no_remat(name, kwargs):
  want = jax.grad(_block)(W, X)
  got = jax.jit(jax.grad(remat(_block, name, **kwargs)))(W, X)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_named_activations_are_saved_offloaded_or_recomputed():
  saved = _residuals(remat(_block, "save_names", save=["mlp_hidden"]))
  assert saved.count("named 'mlp_hidden'") == 2 and "mlp_out" not in saved and "<host>" not in saved
  off = _residuals(remat(_block, "offload_names", save=["mlp_out"], offload=["mlp_hidden"]))
  assert off.count("f32<host>[4,8]") == 2 and off.count("named 'mlp_out'") == 2
  assert "named 'mlp_hidden'" not in off  # it lives on the host, not on the device
  full = _residuals(remat(_block, "full"))
  assert "named" not in full and "<host>" not in full


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
def test_offload_lowers_to_host_placement(platform):
  fn = jax.grad(remat(_block, "offload_names", offload=["mlp_hidden"]))
  text = jax.jit(fn).trace(W, X).lower(lowering_platforms=(platform,)).as_text()
  assert '_xla_buffer_placement = "pinned_host"' in text
  plain = jax.jit(jax.grad(remat(_block, "save_names", save=["mlp_hidden"]))).trace(W, X)
  assert "annotate_device_placement" not in plain.lower(lowering_platforms=(platform,)).as_text()


def test_policy_errors_and_registry():
  assert set(REMAT_POLICIES.names()) == {"none", "full", "save_dots", "save_names", "offload_names",
                                         "offload_dots"}
  assert "mlp_hidden" in ACTIVATION_NAMES
  with pytest.raises(UnknownNameError, match="unknown remat policy 'ofload_names'.*offload_names"):
    remat_policy("ofload_names")
  with pytest.raises(ConfigError, match=r"\['mlp_out'\] are both saved and offloaded"):
    remat_policy("offload_names", save=["mlp_out"], offload=["mlp_out"])
  with pytest.raises(ConfigError, match="'full' takes no save names"):
    remat_policy("full", save=["mlp_out"])
  with pytest.raises(ConfigError, match="offload_dst must be pinned_host or unpinned_host"):
    remat_policy("offload_dots", offload_dst="device")
