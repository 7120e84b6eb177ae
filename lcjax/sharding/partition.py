"""The active (mesh, rules) context, activation constraints, and shardings of annotated param / cache pytrees.

Model code never names mesh axes: it calls `constrain(x, (ACT_BATCH, ACT_SEQ, ACT_EMBED))`. Inside
`use_sharding(mesh, rules)` that is a `with_sharding_constraint` to the resolved `NamedSharding`; outside it is the
identity, so the same model runs unsharded. The context is read while a step is traced; `lcjax.sharding.steps`
enters it inside the traced function, so a compiled step never depends on where it is called from.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Any, Sequence

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lcjax.errors import ShardingError
from lcjax.quant.formats import is_qarray
from lcjax.sharding import axes as ax
from lcjax.sharding.mesh import mesh_sizes
from lcjax.sharding.rules import Rules, get_rules, resolve


@dataclasses.dataclass(frozen=True)
class ShardingContext:
  """What `constrain` and the context-parallel attention impls read.

  Attributes:
    mesh: the device mesh.  rules: the logical-axis rule set.
    extras: static, hashable per-step layout data for impls (e.g. the HDP group layout), as (key, value) pairs.
  """

  mesh: Mesh
  rules: Rules
  extras: tuple = ()

  def extra(self, key: str, default=None):
    """The value stored under `key` in `extras`."""
    return dict(self.extras).get(key, default)

  def spec(self, logical: Sequence[str | None], shape: Sequence[int] | None = None) -> PartitionSpec:
    """The PartitionSpec of a tensor with these logical axes (and shape) on this mesh."""
    return resolve(logical, self.rules, mesh_sizes(self.mesh), shape)

  def sharding(self, logical: Sequence[str | None], shape: Sequence[int] | None = None) -> NamedSharding:
    """The NamedSharding of a tensor with these logical axes (and shape) on this mesh."""
    return NamedSharding(self.mesh, self.spec(logical, shape))


_ACTIVE: contextvars.ContextVar[ShardingContext | None] = contextvars.ContextVar("lcjax_sharding", default=None)


@contextlib.contextmanager
def use_sharding(mesh: Mesh, rules: str | Rules, **extras: Any):
  """Activates (mesh, rules) for `constrain` and the context-parallel attention impls.

  Args:
    mesh: from `lcjax.sharding.mesh.create_mesh`.  rules: a `Rules` or a name in `RULE_SETS`.
    **extras: static layout data read by impls (hashable values).
  """
  token = _ACTIVE.set(ShardingContext(mesh, get_rules(rules), tuple(sorted(extras.items()))))
  try:
    yield _ACTIVE.get()
  finally:
    _ACTIVE.reset(token)


def active() -> ShardingContext | None:
  """The innermost active context, or None."""
  return _ACTIVE.get()


def require_active(what: str) -> ShardingContext:
  """The active context; raises `ShardingError` naming `what` needs one."""
  ctx = _ACTIVE.get()
  if ctx is None:
    raise ShardingError(f"{what} needs an active device mesh: run it inside `with lcjax.sharding.use_sharding(mesh, "
                        f"rules):` (or a step built by lcjax.sharding.steps), with a mesh from "
                        f"lcjax.sharding.mesh.create_mesh")
  return ctx


def constrain(x: jax.Array, logical: Sequence[str | None]) -> jax.Array:
  """Constrains activation `x` to the sharding of its logical axes under the active context (identity without one).

  Args:
    x: any array.  logical: one logical name (or None) per dim of x.
  """
  ctx = _ACTIVE.get()
  if ctx is None:
    return x
  return jax.lax.with_sharding_constraint(x, ctx.sharding(logical, x.shape))


def _is_spec(x) -> bool:
  return isinstance(x, PartitionSpec)


def _is_names(x) -> bool:
  return isinstance(x, tuple) and all(n is None or isinstance(n, str) for n in x)


def param_shardings(state, mesh: Mesh, rules: str | Rules):
  """NamedShardings for every leaf of an `nnx.State` of annotated params (or of its abstract shapes).

  Args:
    state: params from `nnx.split` (arrays or ShapeDtypeStructs) whose Variables carry `sharding_names`.
  Returns:
    A pytree like `state` with a NamedSharding per leaf.
  """
  rules = get_rules(rules)
  sizes = mesh_sizes(mesh)
  logical = jax.tree.leaves(nnx.get_partition_spec(state), is_leaf=_is_spec)
  leaves, treedef = jax.tree.flatten(state)
  if any(is_qarray(v) for v in jax.tree.leaves(state, is_leaf=is_qarray)):
    logical = _quantized_logical(state, logical)
  if len(logical) != len(leaves):
    raise ShardingError(f"{len(leaves)} param leaves but {len(logical)} logical annotations")
  out = [NamedSharding(mesh, resolve(tuple(spec), rules, sizes, leaf.shape)) for spec, leaf in zip(logical, leaves)]
  return jax.tree.unflatten(treedef, out)


def _quantized_logical(state, logical: list) -> list:
  """Per-array logical names where some params are `QArray`s: each of a QArray's leaves (values, scale, mins)
  takes the QArray's own two names (`QArray.axes`); a plain param keeps its Variable's names."""
  out, specs = [], iter(logical)
  for value in jax.tree.leaves(state, is_leaf=is_qarray):
    spec = next(specs)
    out.extend(jax.tree.leaves(value.logical_axes(), is_leaf=_is_names) if is_qarray(value) else [spec])
  return out


def logical_shardings(tree, logical_tree, mesh: Mesh, rules: str | Rules):
  """NamedShardings for `tree` given a matching tree of logical-axis tuples (one per array leaf).

  Args:
    tree: arrays or ShapeDtypeStructs.  logical_tree: same structure, each leaf a tuple of logical names.
  """
  rules = get_rules(rules)
  sizes = mesh_sizes(mesh)
  return jax.tree.map(lambda names, x: NamedSharding(mesh, resolve(names, rules, sizes, x.shape)),
                      logical_tree, tree, is_leaf=_is_names)


def cache_logical_axes(cache):
  """Logical axes of a dense `KVCache`: k, v [B, K, S, H] and lengths [B]."""
  kv = (ax.CACHE_BATCH, ax.CACHE_KV_HEADS, ax.CACHE_SEQ, ax.CACHE_HEAD_DIM)
  layers = tuple(layer.logical_axes() if hasattr(layer, "logical_axes")  # recurrent states name their own
                 else type(layer)(**{name: kv for name in vars(layer)}) for layer in cache.layers)
  return type(cache)(layers=layers, lengths=(ax.CACHE_BATCH,))


def cache_shardings(cache, mesh: Mesh, rules: str | Rules):
  """NamedShardings of a dense `KVCache` (arrays or abstract shapes)."""
  return logical_shardings(cache, cache_logical_axes(cache), mesh, rules)


BATCH_AXES = (ax.ACT_BATCH, ax.ACT_SEQ)


def batch_shardings(batch, mesh: Mesh, rules: str | Rules):
  """NamedShardings for a dict of [B, T] token-level arrays (tokens, targets, masks, positions, segment ids)."""
  return logical_shardings(batch, jax.tree.map(lambda _: BATCH_AXES, batch), mesh, rules)


def place(tree, shardings):
  """Puts host or device arrays at `shardings`; works across processes (every process passes the same values)."""
  def put(x, s):
    if jax.process_count() == 1:
      return jax.device_put(x, s)
    host = jax.device_get(x) if isinstance(x, jax.Array) and x.is_fully_addressable else x
    return jax.make_array_from_callback(host.shape, s, lambda idx: host[idx])

  return jax.tree.map(put, tree, shardings)
