"""RoPE scalings against frequencies computed by hand (H = 8, so w_i = b^(-i/4) for i = 0..3)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.config import RopeConfig
from lcjax.errors import ConfigError, UnknownNameError
from lcjax.layers.rope import ROPE_SCALINGS, apply_rope, rope_cos_sin, rope_frequencies

H = 8


def _freqs(**kw):
  return rope_frequencies(RopeConfig(**kw), H, 2048)


def test_none():
  inv, factor = _freqs(theta=10000.0)
  np.testing.assert_allclose(inv, [1.0, 0.1, 0.01, 0.001], rtol=1e-12)
  assert factor == 1.0


def test_linear_position_interpolation():
  inv, _ = _freqs(theta=10000.0, scaling="linear", factor=4.0)
  np.testing.assert_allclose(inv, [0.25, 0.025, 0.0025, 0.00025], rtol=1e-12)


def test_ntk_aware():
  # b' = 10000 * 4^(8/6) = 63496.04; w = b'^(-i/4): b'^(1/4) = 15.8740
  inv, _ = _freqs(theta=10000.0, scaling="ntk", factor=4.0)
  np.testing.assert_allclose(inv, [1.0, 1 / 15.874011, 1 / 15.874011 ** 2, 1 / 15.874011 ** 3], rtol=1e-6)


def test_yarn():
  # corr_dim(32) = 8 ln(2048 / (32 * 2 pi)) / (2 ln 10000) = 1.008 -> floor 1; corr_dim(1) = 2.513 -> ceil 3.
  # ramp over i = 0..3: (i - 1) / 2 clipped = [0, 0, 0.5, 1]; w = ramp * w/s + (1 - ramp) * w.
  inv, factor = _freqs(theta=10000.0, scaling="yarn", factor=4.0, original_context=2048)
  np.testing.assert_allclose(inv, [1.0, 0.1, 0.01 * (0.5 / 4 + 0.5), 0.001 / 4], rtol=1e-12)
  assert factor == pytest.approx(0.1 * math.log(4.0) + 1.0)  # 1.1386


def test_llama3():
  # b = 500000, s = 8, L_orig = 8192: wavelengths 2 pi / w = [6.28, 167.1, 4442.9, 118145]; low/high wavelen
  # 8192 / 2048. i = 0, 1 kept; i = 3 divided by 8; i = 2 blended with u = (8192 / 4442.9 - 1) / 3 = 0.281283.
  inv, _ = _freqs(theta=500000.0, scaling="llama3", factor=8.0, original_context=8192,
                  low_freq_factor=1.0, high_freq_factor=4.0)
  w = [1.0, 500000 ** -0.25, 500000 ** -0.5, 500000 ** -0.75]
  u = (8192 / (2 * math.pi / w[2]) - 1.0) / 3.0
  assert u == pytest.approx(0.281283, abs=1e-6)
  np.testing.assert_allclose(inv, [w[0], w[1], (1 - u) * w[2] / 8 + u * w[2], w[3] / 8], rtol=1e-12)


def test_abf():
  inv, _ = _freqs(theta=10000.0, scaling="abf", new_theta=500000.0)
  np.testing.assert_allclose(inv, [1.0, 0.0376060, 0.00141421, 5.31829e-5], rtol=1e-5)


def test_registry_and_errors():
  assert ROPE_SCALINGS.names() == ["abf", "linear", "llama3", "none", "ntk", "yarn"]
  with pytest.raises(UnknownNameError, match="unknown RoPE scaling 'yarnn'.*Did you mean 'yarn'"):
    _freqs(scaling="yarnn")
  with pytest.raises(ConfigError, match="factor >= 1"):
    _freqs(scaling="linear", factor=0.5)
  with pytest.raises(ConfigError, match="new_theta"):
    _freqs(scaling="abf")


def test_rotation_is_relative():
  """<R(p) q, R(p') k> depends only on p - p', and rotations keep norms."""
  inv, _ = _freqs(theta=10000.0)
  q, k = jax.random.normal(jax.random.PRNGKey(0), (2, 1, 1, 1, H))

  def rot(x, p):
    cos, sin = rope_cos_sin(jnp.asarray([[p]]), inv)
    return apply_rope(x, cos, sin)

  dot = lambda p, pk: float(jnp.sum(rot(q, p) * rot(k, pk)))  # noqa: E731
  assert dot(10, 3) == pytest.approx(dot(107, 100), abs=1e-4)
  assert float(jnp.linalg.norm(rot(q, 37))) == pytest.approx(float(jnp.linalg.norm(q)), rel=1e-6)
