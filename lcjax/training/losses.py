"""Language-modelling losses (registry `LOSSES`)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from lcjax.registry import Registry

LOSSES: Registry[Callable] = Registry("loss")


@LOSSES.register("next_token")
def next_token_loss(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array | None = None):
  """Mean cross-entropy of next-token prediction over the tokens where `loss_mask` is 1.

  Args:
    logits: [B, T, V] (any float dtype; computed in fp32).
    targets: [B, T] int token ids (already shifted: targets[:, t] is the token after inputs[:, t]).
    loss_mask: [B, T] 0/1 weights (padding, prompts of SFT examples and document ends get 0); None = all ones.
  Returns:
    (loss scalar, {"loss": loss, "tokens": number of counted tokens, "accuracy": argmax accuracy}).
  """
  logits = logits.astype(jnp.float32)
  mask = jnp.ones(targets.shape, jnp.float32) if loss_mask is None else loss_mask.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  nll = (log_z - target_logit) * mask
  tokens = jnp.sum(mask)
  loss = jnp.sum(nll) / jnp.maximum(tokens, 1.0)
  accuracy = jnp.sum((jnp.argmax(logits, axis=-1) == targets) * mask) / jnp.maximum(tokens, 1.0)
  return loss, {"loss": loss, "tokens": tokens, "accuracy": accuracy}
