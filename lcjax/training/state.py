"""The train state pytree and the jitted train step (gradient accumulation, named remat policies, loss masking).

  TrainState(step, params, opt_state)           a pytree; params is the model's nnx.State
  step(state, batch) -> (state, metrics)        batch: dict of [B, T] (+ rope_scale [B]); state donated

With grad_accum = A the batch splits into A microbatches of B / A rows, scanned in order; gradients and metrics
are token-weighted sums divided by the total number of trained tokens, so the step equals the full-batch step
(loss = sum of masked NLL / number of masked tokens) up to float rounding.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from lcjax.errors import ConfigError
from lcjax.memory.remat import remat_policy
from lcjax.sharding.rules import Rules
from lcjax.sharding.steps import jit_sharded, replicated


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
  """step: int32 scalar; params: model params (nnx.State); opt_state: optax state."""

  step: jax.Array
  params: object
  opt_state: object


def with_remat(loss_fn: Callable, name: str, save=(), offload=()) -> Callable:
  """`loss_fn` under the named remat policy of `lcjax.memory.remat` ("none" returns it unchanged)."""
  if name == "none" and not save and not offload:
    return loss_fn
  return jax.checkpoint(loss_fn, policy=remat_policy(name, save=save, offload=offload))


def _microbatches(batch: dict, accum: int) -> dict:
  def split(x):
    if x.shape[0] % accum:
      raise ConfigError(f"batch size {x.shape[0]} is not divisible by grad_accum={accum}")
    return x.reshape(accum, x.shape[0] // accum, *x.shape[1:])

  return jax.tree.map(split, batch)


def accumulate_grads(loss_fn: Callable, params, batch: dict, accum: int):
  """(loss, metrics, grads) over `accum` microbatches, token-weighted (equal to the full batch's).

  Args:
    loss_fn: `(params, batch) -> (mean loss, aux with "tokens")`.  batch: leaves [B, ...].
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if accum == 1:
    (loss, aux), grads = grad_fn(params, batch)
    return loss, aux, grads

  def body(carry, mb):
    (loss, aux), grads = grad_fn(params, mb)
    w = aux["tokens"]
    sums = {k: v * w for k, v in aux.items() if k != "tokens"}
    add = (jax.tree.map(lambda g: g * w, grads), sums, w)
    return jax.tree.map(jnp.add, carry, add), None

  zeros = (jax.tree.map(jnp.zeros_like, params),
           {k: jnp.zeros((), jnp.float32) for k in jax.eval_shape(loss_fn, params, jax.tree.map(
               lambda x: x[0], _microbatches(batch, accum)))[1] if k != "tokens"}, jnp.zeros((), jnp.float32))
  (gsum, msum, tokens), _ = jax.lax.scan(body, zeros, _microbatches(batch, accum))
  denom = jnp.maximum(tokens, 1.0)
  aux = {k: v / denom for k, v in msum.items()}
  return aux["loss"], {**aux, "tokens": tokens}, jax.tree.map(lambda g: g / denom, gsum)


def make_step(loss_fn: Callable, optimizer: optax.GradientTransformation, schedule, mesh: Mesh, rules: str | Rules,
              state_shardings, batch_shardings, grad_accum: int = 1, lr_scale: float = 1.0) -> Callable:
  """The jitted `(state, batch) -> (state, metrics)` (state donated; metrics: loss, accuracy, tokens, lr,
  grad_norm). lr_scale multiplies the updates (a stage's learning-rate multiplier)."""

  def step(state: TrainState, batch: dict):
    loss, aux, grads = accumulate_grads(loss_fn, state.params, batch, grad_accum)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    if lr_scale != 1.0:
      updates = jax.tree.map(lambda u: u * lr_scale, updates)
    params = optax.apply_updates(state.params, updates)
    metrics = {**aux, "loss": loss, "lr": schedule(state.step) * lr_scale, "grad_norm": optax.global_norm(grads)}
    return TrainState(state.step + 1, params, opt_state), metrics

  return jit_sharded(step, mesh, rules, (state_shardings, batch_shardings), (state_shardings, replicated(mesh)),
                     donate_argnums=(0,))
