"""The next-token loss against a hand computation."""

import math

import jax.numpy as jnp
import pytest

from lcjax.training.losses import LOSSES, next_token_loss


def test_next_token_loss_by_hand():
  logits = jnp.log(jnp.asarray([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]]))
  targets = jnp.asarray([[0, 2, 1]])
  mask = jnp.asarray([[1, 1, 0]])
  loss, metrics = next_token_loss(logits, targets, mask)
  assert float(loss) == pytest.approx((-math.log(0.5) - math.log(0.1)) / 2, rel=1e-6)
  assert float(metrics["tokens"]) == 2 and float(metrics["accuracy"]) == pytest.approx(0.5)
  assert LOSSES.get("next_token") is next_token_loss


def test_distill_kl_loss_by_hand():
  from lcjax.errors import ShapeError
  from lcjax.training.losses import distill_kl_loss

  student = jnp.asarray([[[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]])
  teacher = jnp.asarray([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]]])
  temp = 2.0
  p = jnp.exp(teacher[0, 0] / temp) / jnp.exp(teacher[0, 0] / temp).sum()
  q = jnp.exp(student[0, 0] / temp) / jnp.exp(student[0, 0] / temp).sum()
  want = temp ** 2 * float(jnp.sum(p * jnp.log(p / q)))
  loss, aux = distill_kl_loss(student, teacher, temp, jnp.asarray([[1, 0]]))
  assert float(loss) == pytest.approx(want, rel=1e-6) and float(aux["tokens"]) == 1
  assert float(distill_kl_loss(teacher, teacher, temp)[0]) == pytest.approx(0.0, abs=1e-7)
  assert LOSSES.get("distill_kl") is distill_kl_loss
  with pytest.raises(ShapeError, match="share the vocabulary"):
    distill_kl_loss(student, teacher[..., :2])
