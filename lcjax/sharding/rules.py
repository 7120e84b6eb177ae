"""Named rule sets: which mesh axes (`data, fsdp, context, tensor`) each logical axis name is sharded over.

A rule maps one logical name (`lcjax.sharding.axes`) to an ordered tuple of mesh axes; names a rule set does not
mention are replicated. Resolving a tensor's logical axes against a mesh gives its `PartitionSpec`:

  for each dim, in order: take the rule's mesh axes that (a) have size > 1 in the mesh, (b) no earlier dim of the
  same tensor already uses, and (c) keep the dim divisible (the product of the taken sizes divides the dim).

(c) means a dim the mesh cannot split evenly (SmolLM2's 9 query heads on a tensor axis of 2) stays replicated on
that axis instead of failing; the golden snapshot (tests/sharding/golden_partition_specs.txt) records every such
decision, so a change is a reviewed change.

| rule set | params                                              | activations                         | KV cache                      |
|----------|-----------------------------------------------------|-------------------------------------|-------------------------------|
| fsdp     | embed -> fsdp                                       | batch -> (data, fsdp)               | batch -> (data, fsdp)         |
| fsdp_tp  | embed -> fsdp; vocab, heads, mlp -> tensor          | + heads, mlp, vocab -> tensor       | + kv heads -> tensor          |
| fsdp_cp  | embed -> fsdp                                       | + seq, kv seq -> context            | + seq -> context              |
| decode   | vocab, heads, mlp -> tensor; embed -> fsdp          | batch -> data; heads, mlp -> tensor | batch -> data, kv heads -> tensor, seq -> context |
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

from jax.sharding import PartitionSpec

from lcjax.config import MESH_AXES
from lcjax.errors import ShardingError
from lcjax.registry import Registry
from lcjax.sharding import axes as ax


@dataclasses.dataclass(frozen=True)
class Rules:
  """A named mapping from logical axis names to tuples of mesh axes.

  Attributes:
    name: the rule set's name.
    table: ((logical name, (mesh axis, ...)), ...); logical names not listed are replicated.
  """

  name: str
  table: tuple[tuple[str, tuple[str, ...]], ...]

  def __post_init__(self):
    for logical, mesh_axes in self.table:
      if logical not in ax.ALL_AXES:
        raise ShardingError(f"rule set {self.name!r}: unknown logical axis {logical!r}; known: "
                            f"{', '.join(ax.ALL_AXES)}")
      for a in mesh_axes:
        if a not in MESH_AXES:
          raise ShardingError(f"rule set {self.name!r}: rule {logical!r} -> {a!r} names an unknown mesh axis; "
                              f"mesh axes are {', '.join(MESH_AXES)}")

  def mesh_axes(self, logical: str) -> tuple[str, ...]:
    """The mesh axes `logical` is sharded over (empty = replicated)."""
    if logical not in ax.ALL_AXES:
      raise ShardingError(f"unknown logical axis {logical!r}; known: {', '.join(ax.ALL_AXES)}")
    return dict(self.table).get(logical, ())

  def replace(self, name: str | None = None, **rules: Sequence[str] | str) -> "Rules":
    """A copy with some rules changed, e.g. `fsdp().replace(act_seq=("context",))`."""
    table = dict(self.table)
    table.update({k: (v,) if isinstance(v, str) else tuple(v) for k, v in rules.items()})
    return Rules(name or self.name, tuple(table.items()))


def make_rules(name: str, rules: Mapping[str, Sequence[str] | str]) -> Rules:
  """Builds a validated `Rules` from a dict; a bare string value means one mesh axis."""
  return Rules(name, tuple((k, (v,) if isinstance(v, str) else tuple(v)) for k, v in rules.items()))


RULE_SETS: Registry[Callable[[], Rules]] = Registry("rule set")

_BATCH = ("data", "fsdp")


@RULE_SETS.register("fsdp")
def fsdp() -> Rules:
  """Fully sharded data parallel: params split along D over `fsdp`, the batch over `data` and `fsdp`."""
  return make_rules("fsdp", {ax.EMBED: "fsdp", ax.ACT_BATCH: _BATCH, ax.CACHE_BATCH: _BATCH})


@RULE_SETS.register("fsdp_tp")
def fsdp_tp() -> Rules:
  """FSDP plus tensor parallelism (Megatron): heads, MLP and vocab split over `tensor`."""
  tensor = {name: "tensor" for name in (ax.VOCAB, ax.Q_HEADS, ax.KV_HEADS, ax.MLP, ax.ACT_HEADS, ax.ACT_KV_HEADS,
                                        ax.ACT_MLP, ax.ACT_VOCAB, ax.CACHE_KV_HEADS)}
  return fsdp().replace("fsdp_tp", **tensor)


@RULE_SETS.register("fsdp_cp")
def fsdp_cp() -> Rules:
  """FSDP plus context parallelism: the sequence of activations (and of the cache) split over `context`."""
  return fsdp().replace("fsdp_cp", act_seq=("context",), act_kv_seq=("context",), cache_seq=("context",))


@RULE_SETS.register("decode")
def decode() -> Rules:
  """Serving: batch over `data`, heads/MLP/vocab over `tensor`, the KV cache's sequence over `context`."""
  tensor = {name: "tensor" for name in (ax.VOCAB, ax.Q_HEADS, ax.KV_HEADS, ax.MLP, ax.ACT_HEADS, ax.ACT_KV_HEADS,
                                        ax.ACT_MLP, ax.ACT_VOCAB, ax.CACHE_KV_HEADS)}
  return make_rules("decode", {ax.EMBED: "fsdp", ax.ACT_BATCH: "data", ax.CACHE_BATCH: "data",
                               ax.CACHE_SEQ: "context", ax.PAGES: "context", **tensor})


def get_rules(rules: str | Rules) -> Rules:
  """A `Rules` from a registered name (or the Rules itself)."""
  return rules if isinstance(rules, Rules) else RULE_SETS.get(rules)()


def resolve(logical: Sequence[str | None], rules: Rules, mesh_shape: Mapping[str, int],
            shape: Sequence[int] | None = None) -> PartitionSpec:
  """The PartitionSpec of a tensor with logical axes `logical` (see the module docstring for the algorithm).

  Args:
    logical: one logical name (or None) per dim.
    rules: the rule set.  mesh_shape: mesh axis name -> size.
    shape: the tensor's shape; when given, dims are only split by axes that divide them.
  Raises:
    ShardingError: unknown logical names or a shape whose rank differs from `logical`.
  """
  if shape is not None and len(shape) != len(logical):
    raise ShardingError(f"logical axes {tuple(logical)} name {len(logical)} dims; the array has shape "
                        f"{tuple(shape)}")
  used: set[str] = set()
  spec = []
  for dim, name in enumerate(logical):
    taken, size = [], 1
    for a in (() if name is None else rules.mesh_axes(name)):
      n = mesh_shape.get(a, 1)
      if n == 1 or a in used or (shape is not None and shape[dim] % (size * n)):
        continue
      taken.append(a)
      size *= n
    used.update(taken)
    spec.append(None if not taken else taken[0] if len(taken) == 1 else tuple(taken))
  while spec and spec[-1] is None:
    spec.pop()
  return PartitionSpec(*spec)
