"""Sharded steps: `jax.jit` with in/out shardings from logical-axis rules (pjit style).

Builders are generic: a train step takes any `loss_fn(params, batch) -> (loss, aux)` and an optax optimizer, so the
training loop (`lcjax.training`) reuses them; `llama_loss` is the decoder's next-token loss. Every builder enters
`use_sharding(mesh, rules)` inside the traced function, so activation constraints and the context-parallel
attention impls see the mesh no matter where the step is called from.

  grad_step(params, batch) -> (loss, aux, grads)                       grads sharded like params
  train_step(params, opt_state, batch) -> (params, opt_state, aux)      params / opt_state donated
  prefill_step(params, tokens [B, T], positions [B, T], last [B], cache) -> (logits [B, V], cache)
  decode_step(params, tokens [B, 1], cache) -> (logits [B, V], cache)   cache.lengths advanced by one
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lcjax.sharding.partition import use_sharding
from lcjax.sharding.rules import Rules, get_rules
from lcjax.training.losses import next_token_loss


def jit_sharded(fn: Callable, mesh: Mesh, rules: str | Rules, in_shardings, out_shardings, *,
                donate_argnums=(), extras: dict | None = None) -> Callable:
  """`jax.jit(fn)` with shardings, tracing `fn` inside `use_sharding(mesh, rules, **extras)`.

  Args:
    fn: a pure function of arrays.  mesh, rules: the layout.  in_shardings, out_shardings: as `jax.jit`.
    donate_argnums: as `jax.jit`.  extras: static layout data for impls (see `use_sharding`).
  """
  rules = get_rules(rules)
  extras = dict(extras or {})

  def traced(*args):
    with use_sharding(mesh, rules, **extras):
      return fn(*args)

  return jax.jit(traced, in_shardings=in_shardings, out_shardings=out_shardings, donate_argnums=donate_argnums)


def replicated(mesh: Mesh) -> NamedSharding:
  """A fully replicated sharding (scalars, metrics)."""
  return NamedSharding(mesh, PartitionSpec())


def llama_loss(graphdef) -> Callable:
  """The decoder's loss: `loss(params, batch) -> (loss, aux)` with `lcjax.training.losses.next_token_loss`.

  `batch` holds tokens, targets [B, T] and optionally loss_mask, positions, segment_ids [B, T] and rope_scale [B].
  """

  def loss(params, batch: dict):
    model = nnx.merge(graphdef, params)
    logits, _ = model(batch["tokens"], batch.get("positions"), segment_ids=batch.get("segment_ids"),
                      rope_scale=batch.get("rope_scale"))
    return next_token_loss(logits, batch["targets"], batch.get("loss_mask"))

  return loss


def make_grad_step(loss_fn: Callable, mesh: Mesh, rules: str | Rules, param_shardings, batch_shardings,
                   extras: dict | None = None) -> Callable:
  """A sharded `(params, batch) -> (loss, aux, grads)`; grads come back sharded like the params."""

  def step(params, batch):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
    return loss, aux, grads

  rep = replicated(mesh)
  return jit_sharded(step, mesh, rules, (param_shardings, batch_shardings), (rep, rep, param_shardings),
                     extras=extras)


def init_optimizer(optimizer: optax.GradientTransformation, params, param_shardings, mesh: Mesh):
  """`optimizer.init(params)` with param-shaped state (moments) sharded like the params, the rest replicated.

  Returns:
    (optimizer state, its shardings).
  """
  shapes = jax.eval_shape(optimizer.init, params)
  shardings = optax.tree_map_params(optimizer, lambda _, s: s, shapes, param_shardings,
                                    transform_non_params=lambda _: replicated(mesh))
  return jax.jit(optimizer.init, out_shardings=shardings)(params), shardings


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation, mesh: Mesh, rules: str | Rules,
                    param_shardings, opt_shardings, batch_shardings, *, donate: bool = True,
                    extras: dict | None = None) -> Callable:
  """A sharded optimizer step `(params, opt_state, batch) -> (params, opt_state, aux)` (aux includes the loss).

  Args:
    loss_fn: `(params, batch) -> (loss, aux dict)`.  optimizer: any optax transformation.
    param_shardings, opt_shardings, batch_shardings: from `param_shardings`, `init_optimizer`, `batch_shardings`.
    donate: donate params and optimizer state.
  """

  def step(params, opt_state, batch):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {**aux, "loss": loss}

  return jit_sharded(step, mesh, rules, (param_shardings, opt_shardings, batch_shardings),
                     (param_shardings, opt_shardings, replicated(mesh)), donate_argnums=(0, 1) if donate else (),
                     extras=extras)


def make_prefill_step(graphdef, mesh: Mesh, rules: str | Rules, param_shardings, cache_shardings) -> Callable:
  """Sharded prefill into a dense KV cache (cache donated).

  Returns `(params, tokens [B, T], positions [B, T], last [B], cache) -> (logits [B, V] at `last`, cache)`.
  """

  def prefill(params, tokens, positions, last, cache):
    logits, cache = nnx.merge(graphdef, params)(tokens, positions, cache=cache, logits_at=last)
    return logits[:, 0], cache

  row, tok = _row_shardings(mesh, cache_shardings)
  return jit_sharded(prefill, mesh, rules, (param_shardings, tok, tok, row, cache_shardings), (row, cache_shardings),
                     donate_argnums=(4,))


def make_decode_step(graphdef, mesh: Mesh, rules: str | Rules, param_shardings, cache_shardings) -> Callable:
  """Sharded one-token decode over a dense KV cache sharded by the rules (kv heads, sequence).

  Returns `(params, tokens [B, 1], cache) -> (logits [B, V], cache)`; the tokens are written at `cache.lengths`.
  """

  def decode(params, tokens, cache):
    logits, cache = nnx.merge(graphdef, params)(tokens, cache.lengths[:, None], cache=cache)
    return logits[:, 0], dataclasses.replace(cache, lengths=cache.lengths + 1)

  row, tok = _row_shardings(mesh, cache_shardings)
  return jit_sharded(decode, mesh, rules, (param_shardings, tok, cache_shardings), (row, cache_shardings),
                     donate_argnums=(2,))


def _row_shardings(mesh: Mesh, cache_shardings) -> tuple[NamedSharding, NamedSharding]:
  """([B] and [B, T] shardings) following the cache's batch sharding."""
  rows = cache_shardings.lengths.spec
  first = rows[0] if len(rows) else None
  return NamedSharding(mesh, PartitionSpec(first)), NamedSharding(mesh, PartitionSpec(first, None))
