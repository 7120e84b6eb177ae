"""Optimizer state and master params kept in a host tier; the update runs on the device (moved in and out,
whole or streamed per layer) or on the host CPU.

| mode       | where state lives                  | where the update runs                                            |
|------------|------------------------------------|------------------------------------------------------------------|
| device     | device (no offload; the baseline)  | device                                                           |
| host_state | a host memory kind (pinned_host)   | device: the jitted step moves state in, updates, moves it back   |
|            |                                    | (the MaxText pattern)                                            |
| per_layer  | a host memory kind, one optimizer  | device, one group at a time (only a group's state on device; XLA |
|            | state per layer group              | can overlap a group's copies with the previous group's update)   |
| cpu        | host RAM as CPU-backend arrays     | the host CPU (ZeRO-Offload style: grads D2H, new params H2D)     |

`per_layer` keeps one optimizer state per group (`group_of(path)`: a decoder layer, the embedding, ...), which is
exactly the whole-tree update for element-wise optimizers (SGD, Adam, AdamW, ...); transforms that couple leaves
(global-norm clipping) must be applied to the gradients before.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from lcjax.errors import ConfigError
from lcjax.memory.tiers import Tier, sharding_for, tier as get_tier

OFFLOAD_MODES = ("device", "host_state", "per_layer", "cpu")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class OffloadedOptState:
  """Master params and optimizer state (in a tier; for `per_layer` a dict group -> optimizer state)."""

  params: Any
  opt_state: Any


def default_group(path) -> str:
  """Group of a parameter path: 'layers/<i>' for decoder layers, else the top-level key."""
  keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
  return "/".join(keys[:2]) if keys and keys[0] == "layers" and len(keys) > 1 else keys[0] if keys else ""


def _split(tree, group_of) -> dict[str, dict]:
  """{group: {path string: leaf}} (leaves keyed by their full path)."""
  groups: dict[str, dict] = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    groups.setdefault(group_of(path), {})[jax.tree_util.keystr(path)] = leaf
  return groups


def _merge(tree, groups: dict[str, dict]):
  """The inverse of `_split` (leaves put back where `tree` has them)."""
  flat = {p: x for g in groups.values() for p, x in g.items()}
  return jax.tree_util.tree_map_with_path(lambda p, _: flat[jax.tree_util.keystr(p)], tree)


def _to(x, space):
  return jax.tree.map(lambda a: jax.device_put(a, space), x)


def _place(tree, t: Tier, shardings=None):
  """Moves `tree` into tier `t` keeping each leaf's sharding (or `shardings`) but changing its memory kind."""
  def put(a, s=None):
    s = sharding_for(t, s if s is not None else getattr(a, "sharding", None))
    if s is None:
      raise ConfigError(f"optimizer offload needs a JAX host memory kind; tier {t.name!r} has none here "
                        f"(use mode='cpu' for host-RAM state updated by the CPU)")
    return jax.device_put(a, s)
  return jax.tree.map(put, tree) if shardings is None else jax.tree.map(put, tree, shardings)


def init_offloaded(optimizer: optax.GradientTransformation, params, mode: str = "host_state",
                   t: Tier | str = "pinned_host", group_of: Callable = default_group) -> OffloadedOptState:
  """Builds the offloaded state from device params (fp32 master copy).

  Args:
    optimizer: an optax transformation.  params: pytree of arrays.  mode: one of OFFLOAD_MODES.
    t: host tier for `host_state` / `per_layer`.  group_of: path -> group name for `per_layer`.
  """
  if mode not in OFFLOAD_MODES:
    raise ConfigError(f"unknown optimizer offload mode {mode!r}; accepted: {', '.join(OFFLOAD_MODES)}")
  master = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
  if mode == "device":
    return OffloadedOptState(master, optimizer.init(master))
  if mode == "cpu":
    cpu = jax.devices("cpu")[0]
    host = jax.device_put(master, cpu)
    return OffloadedOptState(host, jax.jit(optimizer.init)(host))
  t = get_tier(t)
  opt = (optimizer.init(master) if mode == "host_state" else
         {g: optimizer.init(leaves) for g, leaves in _split(master, group_of).items()})
  return OffloadedOptState(_place(master, t), _place(opt, t))


def _update(optimizer, params, opt_state, grads):
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def make_update(optimizer: optax.GradientTransformation, mode: str = "host_state",
                group_of: Callable = default_group, compute_dtype=None) -> Callable:
  """The update step for `mode`.

  Returns:
    `update(state, grads) -> (state, device_params)`: the new offloaded state and the params on the accelerator
    for the next forward pass (cast to `compute_dtype` when given). grads are device arrays like params.
  """
  if mode not in OFFLOAD_MODES:
    raise ConfigError(f"unknown optimizer offload mode {mode!r}; accepted: {', '.join(OFFLOAD_MODES)}")
  cast = (lambda p: jax.tree.map(lambda a: a.astype(compute_dtype), p)) if compute_dtype else (lambda p: p)

  def on_device(state, grads):
    params, opt = _update(optimizer, state.params, state.opt_state, grads)
    return OffloadedOptState(params, opt), cast(params)

  def host_state(state, grads):
    dev = jax.memory.Space.Device
    params, opt = _update(optimizer, _to(state.params, dev), _to(state.opt_state, dev), grads)
    host = jax.memory.Space.Host
    return OffloadedOptState(_to(params, host), _to(opt, host)), cast(params)

  def per_layer(state, grads):
    dev, host = jax.memory.Space.Device, jax.memory.Space.Host
    p_groups, g_groups = _split(state.params, group_of), _split(grads, group_of)
    new_p, new_opt = {}, {}
    for g in p_groups:  # one group on device at a time
      p, o = _update(optimizer, _to(p_groups[g], dev), _to(state.opt_state[g], dev), g_groups[g])
      new_p[g], new_opt[g] = p, _to(o, host)
    params = _merge(state.params, new_p)
    return OffloadedOptState(_to(params, host), new_opt), cast(params)

  if mode == "cpu":
    cpu_update = jax.jit(on_device)

    def cpu(state, grads):
      accel = jax.tree.leaves(grads)[0].sharding
      state, params = cpu_update(state, jax.device_put(grads, jax.devices("cpu")[0]))
      return state, jax.device_put(params, accel)
    return cpu
  fn = {"device": on_device, "host_state": host_state, "per_layer": per_layer}[mode]
  return jax.jit(fn, donate_argnums=0)
