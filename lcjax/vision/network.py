"""ConnNet in Flax NNX: a convolutional backbone with an FPN-style top-down cascade, a non-local long-range relation
block computed through `lcjax.ops.attention`, and an 8-channel connectivity head (or the 1-channel saliency head of
the baseline).

  images [B, H, W, 3] in [0, 1]
    -> backbone: level 0 at full resolution, level i at 1/2^i (stride-2 conv + residual block), widths[i] channels
    -> non-local block on the deepest level (optional):   y_i = sum_j softmax_j(theta(x_i)^T phi(x_j)) g(x_j),
                                                          z_i = W_z y_i + x_i   (Wang et al. 2018, embedded Gaussian)
    -> FPN: p_L = lat_L(f_L); p_i = relu(smooth_i(lat_i(f_i) + up2(p_{i+1})))  (multi-level cascade contexts)
    -> head on p_0: 3x3 conv, relu, 1x1 conv -> logits [B, H, W, 8] (connectivity) or [B, H, W, 1] (saliency)

The non-local block treats the h*w positions of the feature map as tokens: theta, phi, g are 1x1 convolutions to
`nonlocal_heads` heads of `nonlocal_dim` channels and the attention is `ops.attention(..., mask=MaskSpec(causal=
False), scale=1)` (no 1/sqrt(H) in the embedded-Gaussian form), so the blockwise / flash impls and their O(h*w)
memory apply. W_z starts at zero, which makes the block the identity at init (Wang et al. zero the BN gamma).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lcjax.errors import ConfigError, ShapeError
from lcjax.ops.attention import attention
from lcjax.ops.mask import MaskSpec
from lcjax.vision.connectivity import NUM_DIRECTIONS

HEADS = ("connectivity", "saliency")
NON_CAUSAL = MaskSpec(causal=False)


@dataclasses.dataclass(frozen=True)
class ConnNetConfig:
  """The network.

  Attributes:
    head: "connectivity" (8 channels, ConnNet) or "saliency" (1 channel, the baseline).
    widths: channels of the backbone levels (level i at 1/2^i resolution).
    convs_per_block: 3x3 convs in each level's residual block (1 or 2).
    fpn_dim: channels of the top-down cascade and the head.
    nonlocal_block: add the long-range relation block on the deepest level.
    nonlocal_heads, nonlocal_dim: heads and channels per head of theta, phi, g.
    attention_impl: impl name for `ops.attention` ("auto", "reference", "xla_blockwise", ...).
    groups: GroupNorm groups.  norm: GroupNorm after each conv (its statistics over the whole map are a weak
      global path: without it, an output pixel depends on the input only inside `receptive_field`).
    decode: default decode rule of the connectivity head (see `DECODE_RULES`).
    image_size: the training resolution (inference resizes to it).
  """

  head: str = "connectivity"
  widths: tuple[int, ...] = (16, 32, 64)
  convs_per_block: int = 1
  fpn_dim: int = 32
  nonlocal_block: bool = True
  nonlocal_heads: int = 1
  nonlocal_dim: int = 32
  attention_impl: str = "auto"
  groups: int = 8
  norm: bool = True
  decode: str = "mean"
  image_size: int = 64

  def __post_init__(self):
    object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
    if self.head not in HEADS:
      raise ConfigError(f"unknown head {self.head!r}; accepted: {', '.join(HEADS)}")
    if not self.widths or self.convs_per_block not in (1, 2):
      raise ConfigError(f"widths must be non-empty and convs_per_block 1 or 2; got {self.widths}, "
                        f"{self.convs_per_block}")
    for w in self.widths + (self.fpn_dim,):
      if w % self.groups:
        raise ConfigError(f"every width and fpn_dim must be a multiple of groups={self.groups}; got {w}")
    if self.image_size % self.stride:
      raise ConfigError(f"image_size {self.image_size} must be a multiple of the network stride {self.stride}")

  @property
  def stride(self) -> int:
    """Total downsampling of the deepest level: inputs must be multiples of it."""
    return 2 ** (len(self.widths) - 1)

  @property
  def out_channels(self) -> int:
    return NUM_DIRECTIONS if self.head == "connectivity" else 1


def receptive_field(cfg: ConnNetConfig) -> int:
  """Theoretical receptive field (pixels) of an output pixel through the convolutions alone (no non-local block):
  the backbone down to the deepest level, then the top-down smoothing convs and the head."""
  rf, jump = 1, 1
  for level in range(len(cfg.widths)):
    if level:
      rf, jump = rf + 2 * jump, jump * 2  # stride-2 3x3 conv
    rf += 2 * jump * (cfg.convs_per_block + (level == 0))  # the stem conv is one more 3x3 at level 0
  for level in reversed(range(len(cfg.widths) - 1)):
    rf += 2 * 2 ** level  # smooth_i
  return rf + 2  # head 3x3


class ConvNorm(nnx.Module):
  """3x3 conv -> GroupNorm (groups > 0) or a conv with bias (groups = 0); [B, H, W, Cin] -> [B, H', W', Cout]."""

  def __init__(self, cin: int, cout: int, groups: int, rngs: nnx.Rngs, *, stride: int = 1):
    self.conv = nnx.Conv(cin, cout, (3, 3), stride, use_bias=not groups, rngs=rngs)
    self.norm = nnx.GroupNorm(cout, num_groups=groups, rngs=rngs) if groups else None

  def __call__(self, x):
    x = self.conv(x)
    return self.norm(x) if self.norm is not None else x


class ResidualBlock(nnx.Module):
  """relu(x + convs(x)) with `n` 3x3 conv-norm layers (relu between them)."""

  def __init__(self, width: int, n: int, groups: int, rngs: nnx.Rngs):
    self.layers = nnx.List([ConvNorm(width, width, groups, rngs) for _ in range(n)])

  def __call__(self, x):
    h = x
    for i, layer in enumerate(self.layers):
      h = layer(h if i == 0 else jax.nn.relu(h))
    return jax.nn.relu(x + h)


class NonLocal(nnx.Module):
  """Non-local block over the h*w positions, attention through `ops.attention`; identity while W_z = 0.

  Args:
    width: channels C of the feature map.  heads, dim: theta / phi / g heads and channels per head.
    impl: attention impl name.
  """

  def __init__(self, width: int, heads: int, dim: int, impl: str, rngs: nnx.Rngs):
    self.heads, self.dim, self.impl = heads, dim, impl
    self.theta = nnx.Conv(width, heads * dim, (1, 1), rngs=rngs)
    self.phi = nnx.Conv(width, heads * dim, (1, 1), rngs=rngs)
    self.g = nnx.Conv(width, heads * dim, (1, 1), rngs=rngs)
    self.w_z = nnx.Conv(heads * dim, width, (1, 1), kernel_init=nnx.initializers.zeros, rngs=rngs)

  def tokens(self, x):
    """(theta, phi, g) as [B, h*w, heads, dim] token-major tensors of x [B, h, w, C]."""
    b, h, w, _ = x.shape
    return tuple(f(x).reshape(b, h * w, self.heads, self.dim) for f in (self.theta, self.phi, self.g))

  def __call__(self, x):
    b, h, w, _ = x.shape
    q, k, v = self.tokens(x)
    y = attention(q, k, v, mask=NON_CAUSAL, impl=self.impl, scale=1.0)  # softmax_j(theta_i . phi_j) g_j
    return x + self.w_z(y.reshape(b, h, w, self.heads * self.dim))


def upsample2(x):
  """Nearest-neighbour x2 upsampling of [B, h, w, C]."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ConnNet(nnx.Module):
  """The saliency network of `ConnNetConfig` (connectivity or 1-channel head)."""

  def __init__(self, cfg: ConnNetConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    w, g = cfg.widths, cfg.groups if cfg.norm else 0
    self.stem = ConvNorm(3, w[0], g, rngs)
    self.down = nnx.List([ConvNorm(w[i - 1], w[i], g, rngs, stride=2) for i in range(1, len(w))])
    self.blocks = nnx.List([ResidualBlock(c, cfg.convs_per_block, g, rngs) for c in w])
    self.nonlocal_block = (NonLocal(w[-1], cfg.nonlocal_heads, cfg.nonlocal_dim, cfg.attention_impl, rngs)
                           if cfg.nonlocal_block else None)
    self.lateral = nnx.List([nnx.Conv(c, cfg.fpn_dim, (1, 1), rngs=rngs) for c in w])
    self.smooth = nnx.List([ConvNorm(cfg.fpn_dim, cfg.fpn_dim, g, rngs) for _ in w[:-1]])
    self.head_conv = nnx.Conv(cfg.fpn_dim, cfg.fpn_dim, (3, 3), rngs=rngs)
    self.head_out = nnx.Conv(cfg.fpn_dim, cfg.out_channels, (1, 1), rngs=rngs)

  def features(self, images):
    """Backbone levels [f_0 .. f_L] (f_i: [B, H/2^i, W/2^i, widths[i]]), non-local block applied to f_L."""
    x = jax.nn.relu(self.stem((images - 0.5) / 0.25))
    feats = [self.blocks[0](x)]
    for down, block in zip(self.down, self.blocks[1:]):
      feats.append(block(jax.nn.relu(down(feats[-1]))))
    if self.nonlocal_block is not None:
      feats[-1] = self.nonlocal_block(feats[-1])
    return feats

  def __call__(self, images):
    """images [B, H, W, 3] in [0, 1] (H, W multiples of cfg.stride) -> logits [B, H, W, out_channels]."""
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ShapeError(f"images must be [B, H, W, 3], got {tuple(images.shape)}")
    if images.shape[1] % self.cfg.stride or images.shape[2] % self.cfg.stride:
      raise ShapeError(f"image height and width must be multiples of {self.cfg.stride}; got {images.shape[1:3]}")
    feats = self.features(images)
    p = self.lateral[-1](feats[-1])
    for i in reversed(range(len(feats) - 1)):
      p = jax.nn.relu(self.smooth[i](self.lateral[i](feats[i]) + upsample2(p)))
    return self.head_out(jax.nn.relu(self.head_conv(p)))


def init_connnet(cfg: ConnNetConfig, seed: int = 0) -> ConnNet:
  """A freshly initialised ConnNet."""
  return ConnNet(cfg, nnx.Rngs(seed))
