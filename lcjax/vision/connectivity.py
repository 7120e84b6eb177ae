"""Pixel connectivity (ConnNet, Kampffmeyer et al. 2018): targets from masks and decoding back to saliency.

For a binary mask G in {0,1}^{H x W} and the 8 offsets d_c (row, col) of the square neighbourhood,

  C_c(x) = G(x) * G(x + d_c)            zero padding outside the image,

with BiconNet's channel order (`sal2conn` in Zyun-Y/BiconNets general/train/utils_bicon.py):

  c    0        1       2       3       4      5       6      7
  d_c  (-1,-1)  (-1,0)  (-1,1)  (0,-1)  (0,1)  (1,-1)  (1,0)  (1,1)

so d_{7-c} = -d_c: channel c of x and channel 7-c of its neighbour x + d_c describe the same pixel pair
(pair symmetry C_c(x) = C_{7-c}(x + d_c)). Connectivity cubes are channels-last: [..., H, W, 8].

Decoding (registry `DECODE_RULES`, probabilities P [..., H, W, 8] -> saliency [..., H, W]):
  mean       S(x) = (1/8) sum_c P_c(x)          the aggregation commonly cited for ConnNet
  any        S(x) = max_c P_c(x)                 "connected to any neighbour"
  bilateral  S(x) = max_c P_c(x) * P_{7-c}(x + d_c)   BiconNet's bilateral voting (`ConMap2Mask_prob`)
On an exact target cube `any` and `bilateral` return G minus its isolated foreground pixels; `mean` is < 1 on the
object boundary. The paper body was not available here, so which rule ConnNet itself used is not confirmed; all
three are selectable and evaluated.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lcjax.errors import ShapeError, ValueRangeError
from lcjax.registry import Registry

OFFSETS: tuple[tuple[int, int], ...] = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
NUM_DIRECTIONS = 8


def check_binary(mask, what: str = "mask") -> None:
  """Raises `ValueRangeError` unless every value of a concrete `mask` is 0 or 1 (traced arrays are not checked)."""
  if isinstance(mask, jax.core.Tracer):
    return
  values = np.unique(np.asarray(mask))
  bad = values[(values != 0) & (values != 1)]
  if bad.size:
    raise ValueRangeError(f"{what} must be binary (values 0 and 1); found {bad[:5].tolist()}"
                          f"{' ...' if bad.size > 5 else ''}. Binarise it first (e.g. mask >= 0.5).")


def shift(x: jax.Array, offset: tuple[int, int]) -> jax.Array:
  """y(x) = x(p + offset) over the last two axes [..., H, W], zero outside the image.

  Args:
    x: [..., H, W].  offset: (row, col), each in {-1, 0, 1}.
  """
  dr, dc = offset
  pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
  padded = jnp.pad(x, pad)
  h, w = x.shape[-2:]
  return padded[..., 1 + dr:1 + dr + h, 1 + dc:1 + dc + w]


def encode(mask: jax.Array) -> jax.Array:
  """Connectivity targets C_c(x) = G(x) G(x + d_c).

  Args:
    mask: [..., H, W] binary (0/1, any dtype).
  Returns:
    [..., H, W, 8] float32.
  """
  if mask.ndim < 2:
    raise ShapeError(f"mask must be [..., H, W], got shape {tuple(mask.shape)}")
  check_binary(mask)
  g = jnp.asarray(mask, jnp.float32)
  return jnp.stack([g * shift(g, d) for d in OFFSETS], axis=-1)


def edge(conn: jax.Array) -> jax.Array:
  """Boundary pixels of a target cube: 0 < sum_c C_c(x) < 8 (BiconNet's `edge`). [..., H, W, 8] -> [..., H, W] bool."""
  total = jnp.sum(conn, axis=-1)
  return (total > 0) & (total < NUM_DIRECTIONS)


def _check_cube(probs: jax.Array) -> None:
  if probs.ndim < 3 or probs.shape[-1] != NUM_DIRECTIONS:
    raise ShapeError(f"connectivity must be [..., H, W, 8], got shape {tuple(probs.shape)}")


def opposite_votes(probs: jax.Array) -> jax.Array:
  """V_c(x) = P_c(x) P_{7-c}(x + d_c) (the bilateral vote of each pixel pair). [..., H, W, 8] -> same shape."""
  _check_cube(probs)
  moved = [shift(probs[..., NUM_DIRECTIONS - 1 - c], d) for c, d in enumerate(OFFSETS)]
  return probs * jnp.stack(moved, axis=-1)


DECODE_RULES: Registry[Callable[[jax.Array], jax.Array]] = Registry("decode rule")


@DECODE_RULES.register("mean")
def decode_mean(probs: jax.Array) -> jax.Array:
  """S = mean_c P_c (ConnNet's commonly cited aggregation)."""
  _check_cube(probs)
  return jnp.mean(probs, axis=-1)


@DECODE_RULES.register("any")
def decode_any(probs: jax.Array) -> jax.Array:
  """S = max_c P_c (a pixel is salient if it is connected to any neighbour)."""
  _check_cube(probs)
  return jnp.max(probs, axis=-1)


@DECODE_RULES.register("bilateral")
def decode_bilateral(probs: jax.Array) -> jax.Array:
  """S = max_c P_c(x) P_{7-c}(x + d_c) (BiconNet bilateral voting)."""
  return jnp.max(opposite_votes(probs), axis=-1)


def decode(probs: jax.Array, rule: str = "mean") -> jax.Array:
  """Saliency [..., H, W] from connectivity probabilities [..., H, W, 8] with a rule from `DECODE_RULES`.

  Raises:
    UnknownNameError: `rule` is not a registered decode rule (the message lists them).
  """
  return DECODE_RULES.get(rule)(probs)


def isolated(mask: jax.Array) -> jax.Array:
  """Foreground pixels with no foreground 8-neighbour: [..., H, W] -> [..., H, W] bool."""
  g = jnp.asarray(mask, jnp.float32)
  neighbours = sum(shift(g, d) for d in OFFSETS)
  return (g > 0) & (neighbours == 0)
