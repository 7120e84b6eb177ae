"""Language-modelling losses (registry `LOSSES`)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from lcjax.errors import ShapeError
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


@LOSSES.register("distill_kl")
def distill_kl_loss(logits: jax.Array, teacher_logits: jax.Array, temperature: float = 1.0,
                    loss_mask: jax.Array | None = None):
  """Knowledge distillation (Hinton et al. 2015): T^2 * mean KL(softmax(teacher / T) || softmax(student / T)).

  The T^2 keeps the gradient scale independent of T. The teacher is a constant (no gradient flows into it).

  Args:
    logits: [B, T, V] the student's.  teacher_logits: [B, T, V] the teacher's (same vocabulary).
    temperature: T > 0.  loss_mask: [B, T] 0/1 weights; None = all ones.
  Returns:
    (loss scalar, {"loss": loss, "tokens": number of counted tokens}).
  """
  if logits.shape != teacher_logits.shape:
    raise ShapeError(f"student logits {logits.shape} and teacher logits {teacher_logits.shape} differ "
                     f"(the two models must share the vocabulary)")
  log_s = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=-1)
  log_t = jax.nn.log_softmax(jax.lax.stop_gradient(teacher_logits).astype(jnp.float32) / temperature, axis=-1)
  mask = jnp.ones(logits.shape[:-1], jnp.float32) if loss_mask is None else loss_mask.astype(jnp.float32)
  kl = jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=-1) * mask
  tokens = jnp.sum(mask)
  loss = temperature ** 2 * jnp.sum(kl) / jnp.maximum(tokens, 1.0)
  return loss, {"loss": loss, "tokens": tokens}
