"""Losses of the saliency heads: ConnNet's connectivity BCE (+ an optional boundary-weighted term) and the 1-channel
saliency BCE of the baseline.

  connectivity:  L = mean over the 8*H*W entries of BCE(sigmoid(z_c(x)), C_c(x))           (ConnNet; BiconNet's
                 `conmap_l`)  +  edge_weight * mean over boundary pixels x of (1/8) sum_c BCE(...)
  saliency:      L = mean over H*W of BCE(sigmoid(z(x)), G(x))

The boundary term is ours (the paper trains with the plain BCE): boundary pixels, where 0 < sum_c C_c < 8, are the
only ones with mixed targets, and weighting them is the usual remedy for their small share of the image.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lcjax.errors import ConfigError, ShapeError
from lcjax.vision.connectivity import NUM_DIRECTIONS, edge, encode


def bce_with_logits(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Elementwise BCE(sigmoid(z), y) = max(z, 0) - z y + log(1 + exp(-|z|)), stable for any z."""
  return jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def _check(logits: jax.Array, mask: jax.Array, channels: int) -> None:
  if logits.ndim != 4 or logits.shape[-1] != channels or logits.shape[:3] != mask.shape:
    raise ShapeError(f"logits must be [B, H, W, {channels}] matching mask [B, H, W] = {tuple(mask.shape)}; "
                     f"got {tuple(logits.shape)}")


def connectivity_loss(logits: jax.Array, mask: jax.Array, edge_weight: float = 0.0):
  """ConnNet's loss.

  Args:
    logits: [B, H, W, 8] pre-sigmoid connectivity.  mask: [B, H, W] binary ground truth.
    edge_weight: weight of the boundary-pixel term (0 = the paper's plain BCE).
  Returns:
    (loss, aux) with aux {"bce", "edge_bce"} scalars.
  """
  _check(logits, mask, NUM_DIRECTIONS)
  target = encode(mask)
  per = bce_with_logits(logits.astype(jnp.float32), target)
  bce = jnp.mean(per)
  boundary = edge(target).astype(jnp.float32)
  edge_bce = jnp.sum(jnp.mean(per, axis=-1) * boundary) / jnp.maximum(jnp.sum(boundary), 1.0)
  loss = bce + edge_weight * edge_bce if edge_weight else bce
  return loss, {"bce": bce, "edge_bce": edge_bce}


def saliency_loss(logits: jax.Array, mask: jax.Array, edge_weight: float = 0.0):
  """The baseline's per-pixel BCE (edge_weight is accepted for a uniform signature and must be 0).

  Args:
    logits: [B, H, W, 1].  mask: [B, H, W] binary.
  Returns:
    (loss, aux) with aux {"bce"}.
  """
  _check(logits, mask, 1)
  if edge_weight:
    raise ConfigError(f"the 1-channel saliency loss has no boundary term; got edge_weight={edge_weight}")
  bce = jnp.mean(bce_with_logits(logits[..., 0].astype(jnp.float32), jnp.asarray(mask, jnp.float32)))
  return bce, {"bce": bce}
