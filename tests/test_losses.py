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
