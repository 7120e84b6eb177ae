"""ConnNet network (issue 17 checks): the non-local block is the identity while W_z = 0 and equals an explicit
softmax(theta^T phi) g through every CPU attention impl; without it the receptive field is bounded, with it every
pixel sees the whole image; heads, shapes and config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lcjax.errors import ConfigError, ShapeError
from lcjax.vision.network import ConnNetConfig, NonLocal, init_connnet, receptive_field

TINY = dict(widths=(8, 16), fpn_dim=8, groups=4, nonlocal_dim=8, image_size=32)


def _nonlocal(impl: str, heads: int = 1) -> NonLocal:
  return NonLocal(16, heads, 8, impl, nnx.Rngs(0))


def _jit_call(module, x):
  """module(x) under one jax.jit (eager NNX calls dispatch op by op)."""
  graphdef, params = nnx.split(module)
  return jax.jit(lambda p, a: nnx.merge(graphdef, p)(a))(params, x)


def test_nonlocal_with_zero_w_z_is_the_identity():
  block = _nonlocal("xla_blockwise")
  x = jax.random.normal(jax.random.key(1), (2, 4, 6, 16))
  assert not np.any(np.asarray(block.w_z.kernel.value))
  np.testing.assert_array_equal(_jit_call(block, x), x)


@pytest.mark.parametrize("impl,heads", [("reference", 1), ("xla_blockwise", 2)])
def test_nonlocal_equals_explicit_softmax_reference(impl, heads):
  block = _nonlocal(impl, heads)
  block.w_z.kernel.value = jax.random.normal(jax.random.key(2), block.w_z.kernel.value.shape) * 0.3
  x = jax.random.normal(jax.random.key(3), (2, 4, 6, 16))
  b, h, w, c = x.shape
  flat = x.reshape(b, h * w, c)
  proj = lambda conv: flat @ conv.kernel.value[0, 0] + conv.bias.value  # noqa: E731  (a 1x1 conv)
  theta, phi, g = (proj(f).reshape(b, h * w, heads, 8) for f in (block.theta, block.phi, block.g))
  attn = jax.nn.softmax(jnp.einsum("bihd,bjhd->bhij", theta, phi), axis=-1)  # softmax_j(theta_i^T phi_j)
  y = jnp.einsum("bhij,bjhd->bihd", attn, g).reshape(b, h * w, heads * 8)
  want = flat + y @ block.w_z.kernel.value[0, 0] + block.w_z.bias.value
  np.testing.assert_allclose(_jit_call(block, x).reshape(b, h * w, c), want, atol=2e-5, rtol=2e-5)


@pytest.fixture(scope="module")
def grads():
  """|d output(centre) / d input| summed over channels, for the net with and without the non-local block."""
  out = {}
  for nl in (False, True):
    cfg = ConnNetConfig(nonlocal_block=nl, norm=False, **TINY)  # GroupNorm statistics would be a global path
    model = init_connnet(cfg, seed=0)
    if nl:  # W_z = 0 at init would hide the block: give it weights
      model.nonlocal_block.w_z.kernel.value = jnp.full_like(model.nonlocal_block.w_z.kernel.value, 0.1)
    graphdef, params = nnx.split(model)
    x = jax.random.uniform(jax.random.key(0), (1, 48, 48, 3))
    f = lambda img: nnx.merge(graphdef, params)(img)[0, 24, 24].sum()  # noqa: E731
    out[nl] = (cfg, np.abs(np.asarray(jax.jit(jax.grad(f))(x))[0]).sum(-1))
  return out


def test_receptive_field_bounds_the_convolutions_and_nonlocal_reaches_everywhere(grads):
  cfg, g = grads[False]
  rows, cols = np.nonzero(g > 0)
  rf = receptive_field(cfg)
  assert rf == 15  # stem + block (5), stride-2 conv (7), block at /2 (11), smooth_0 (13), head (15)
  assert rows.max() - rows.min() + 1 <= rf + 1 and cols.max() - cols.min() + 1 <= rf + 1  # +1: nearest upsampling
  assert g[0, 0] == 0 and g[47, 47] == 0
  _, g_nl = grads[True]
  assert g_nl[0, 0] > 0 and g_nl[47, 47] > 0  # a corner pixel informs the centre through the non-local block


def test_heads_shapes_and_errors():
  for head, channels in (("connectivity", 8), ("saliency", 1)):
    model = init_connnet(ConnNetConfig(head=head, **TINY))
    graphdef, params = nnx.split(model)
    out = jax.eval_shape(lambda p, x: nnx.merge(graphdef, p)(x), params, jnp.zeros((1, 32, 32, 3)))
    assert out.shape == (1, 32, 32, channels)
  with pytest.raises(ShapeError, match="multiples of 2"):
    model(jnp.zeros((1, 33, 32, 3)))
  with pytest.raises(ShapeError, match=r"\[B, H, W, 3\]"):
    model(jnp.zeros((1, 32, 32)))
  with pytest.raises(ConfigError, match="connectivity, saliency"):
    ConnNetConfig(head="edges")
  with pytest.raises(ConfigError, match="groups"):
    ConnNetConfig(widths=(6, 12), groups=4)
