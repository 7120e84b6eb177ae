"""ByteScale's Hybrid Data Parallelism (Ge et al. 2025): one pool of ranks for data and context parallelism.

A static DP x CP mesh splits every sequence over the CP group (communication even for short sequences) and gives
every DP rank the same number of sequences (imbalanced compute, since attention costs ~ len^2). HDP instead:
  * data-aware sharding: a sequence that fits a rank's capacity C stays whole on one rank; a longer (or too costly)
    one is split over just as many ranks g as it needs, in the zigzag layout (balanced causal work inside the group);
  * dynamic communication: only the ranks of such a group run a ring (`RingLayout` of the `hdp` attention impl),
    and only the long sequence's slice (the first `window` tokens of each rank) travels; other ranks never talk;
  * a balance scheduler (`schedule`, a pure function) assigns sequences to ranks so the attention cost per rank,
        cost(rank) = sum over its whole sequences of len^2 + sum over its slices of len^2 / g,
    is balanced around tau = sum(len^2) / R: a sequence costing more than ~tau gets g ranks (at least as many as
    it needs to fit), group sizes are searched to minimise max/min cost, and the whole sequences go, costliest
    first, to the cheapest rank with room (LPT). ByteScale balances by giving ranks of short sequences more micro-batches; a JAX SPMD step runs all ranks
    in lockstep (collectives inside per-rank control flow would deadlock), so here the balance comes from
    cost-aware group sizes plus packing several short sequences per rank within one step.
The packed batch is [R, C] per token array (one row per rank, rows sharded over the data-parallel mesh axes) with
true positions and unique segment ids per sequence, so the loss equals plain data parallelism over the same tokens.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np

from lcjax.errors import ShapeError
from lcjax.ops.attention_context import RingLayout
from lcjax.sharding.layout import layout_permutation


@dataclasses.dataclass(frozen=True)
class Piece:
  """Part of one sequence placed on a rank: slice `part` of `parts` (zigzag), or the whole sequence (parts == 1)."""

  seq: int
  part: int = 0
  parts: int = 1


@dataclasses.dataclass(frozen=True)
class HDPPlan:
  """Where every sequence goes.

  Attributes:
    lengths: tokens per sequence (inputs; targets are the next tokens).
    capacity: C, tokens per rank.
    ranks: per rank, its pieces in buffer order (a split sequence's slice first).
    groups: rank groups sharing one split sequence, in ring order.
    window: tokens at the front of every rank that travel in a group's ring (the longest slice; 0 if none).
  """

  lengths: tuple[int, ...]
  capacity: int
  ranks: tuple[tuple[Piece, ...], ...]
  groups: tuple[tuple[int, ...], ...]
  window: int

  @property
  def ring_layout(self) -> RingLayout:
    """The static layout the `hdp` attention impl runs."""
    return RingLayout(self.groups, self.window or None)

  def costs(self) -> np.ndarray:
    """[R] attention cost per rank: sum len^2 of whole sequences plus len^2 / g of slices."""
    return np.array([sum(self.lengths[p.seq] ** 2 / p.parts for p in pieces) for pieces in self.ranks], float)

  def tokens(self) -> np.ndarray:
    """[R] real tokens per rank."""
    return np.array([sum(slice_len(self.lengths[p.seq], p.parts) if p.parts > 1 else self.lengths[p.seq]
                         for p in pieces) for pieces in self.ranks])

  def imbalance(self) -> float:
    """max / min per-rank cost."""
    c = self.costs()
    return float(c.max() / max(c.min(), 1e-30))


def slice_len(length: int, parts: int) -> int:
  """Tokens per rank of a sequence split zigzag over `parts` ranks (padded to a multiple of 2 * parts)."""
  return 2 * math.ceil(length / (2 * parts))


def schedule(lengths: Sequence[int], num_ranks: int, capacity: int,
             cost: Callable[[int], float] = lambda n: float(n) ** 2) -> HDPPlan:
  """The balance scheduler: assigns variable-length sequences to ranks (pure function; see the module docstring).

  Group sizes start from split thresholds m * tau (a sequence costing more than m * tau gets
  max(ranks needed to fit, ceil(cost / (m tau))) ranks; m < 1 spreads a dominant sequence wider, m > 1 splits
  less), then a local search moves one rank at a time into or out of a group (or splits one of the largest whole
  sequences in two) while that lowers max/min cost. Every candidate is completed by LPT packing of the whole
  sequences; ties go to the plan with the least ring traffic.
  Args:
    lengths: tokens per sequence.  num_ranks: R.  capacity: C, tokens one rank holds.
    cost: compute cost of a whole sequence (attention-dominated: len^2).
  Returns:
    An `HDPPlan`.
  Raises:
    ShapeError: a sequence longer than the ring of all R ranks can hold, or a batch that does not fit R x C.
  """
  lengths = tuple(int(n) for n in lengths)
  if not lengths or min(lengths) < 1:
    raise ShapeError(f"HDP needs at least one sequence and positive lengths, got {lengths}")
  for i, n in enumerate(lengths):
    if slice_len(n, num_ranks) > capacity:
      raise ShapeError(f"sequence {i} of {n} tokens is longer than the HDP ring can hold: {num_ranks} ranks x "
                       f"{capacity} tokens (zigzag slices of {slice_len(n, num_ranks)} tokens); raise the capacity "
                       f"or the number of ranks")
  need = {i: next(g for g in range(1, num_ranks + 1) if slice_len(n, g) <= capacity)
          for i, n in enumerate(lengths) if n > capacity}
  tau = sum(cost(n) for n in lengths) / num_ranks
  order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
  seen: dict = {}

  def evaluate(parts: dict):
    key = tuple(sorted(parts.items()))
    if key not in seen:
      seen[key] = _assign(lengths, num_ranks, capacity, cost, parts) if sum(parts.values()) <= num_ranks else None
    return seen[key]

  def score(plan):
    return (round(plan.imbalance(), 6), sum(len(g) ** 2 for g in plan.groups) * plan.window)

  for m in (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, math.inf):
    evaluate(_threshold_parts(lengths, order, need, num_ranks, cost, tau * m))
  plans = {k: p for k, p in seen.items() if p is not None}
  if not plans:
    raise ShapeError(f"the batch of {sum(lengths)} tokens in {len(lengths)} sequences does not fit {num_ranks} "
                     f"ranks x {capacity} tokens; raise the capacity or split the batch")
  best_key = min(plans, key=lambda k: score(plans[k]))
  for _ in range(4 * num_ranks):  # local search over group sizes
    cands = [(score(p), tuple(sorted(mv.items()))) for mv in _moves(dict(best_key), order, need)
             if (p := evaluate(mv)) is not None]
    if not cands or min(cands)[0] >= score(plans[best_key] if best_key in plans else seen[best_key]):
      break
    best_key = min(cands)[1]
  return seen[best_key]


def _moves(parts: dict, order, need: dict) -> list[dict]:
  """Neighbouring group sizes: one group +-1 rank, a rank (or two) moved from one group to another or to a new
  2-rank split of one of the largest whole sequences, a 2-rank group dissolved."""
  def ok(p):
    return all(g >= max(2, need.get(i, 0)) for i, g in p.items())

  def shift(p, i, d):
    out = {**p, i: p.get(i, 0) + d}
    return {k: v for k, v in out.items() if v > 0}

  targets = list(parts) + [i for i in order if i not in parts][:4]
  moves = [shift(parts, i, d) for i in parts for d in (-1, 1)]
  moves += [{k: v for k, v in parts.items() if k != i} for i, g in parts.items() if g == 2]
  for i in parts:
    for j in targets:
      if j != i:
        d = 1 if j in parts else 2
        moves.append(shift(shift(parts, i, -d), j, d))
  return [m for m in moves if ok(m)]


def _threshold_parts(lengths, order, need, num_ranks, cost, threshold) -> dict:
  """Group sizes {sequence: g} splitting every sequence costing more than `threshold` (largest first)."""
  parts, free = {}, num_ranks
  for i in order:
    g = max(need.get(i, 1), min(math.ceil(cost(lengths[i]) / threshold - 1e-9), free))
    if g > 1:
      parts[i] = g
      free -= g
  return parts


def _assign(lengths, num_ranks, capacity, cost, parts: dict) -> HDPPlan | None:
  """The plan for given group sizes {sequence: g}: groups on consecutive ranks, then LPT packing of the whole
  sequences (costliest first, to the cheapest rank with room). None if they do not fit."""
  ranks: list[list[Piece]] = [[] for _ in range(num_ranks)]
  used, load = np.zeros(num_ranks, int), np.zeros(num_ranks)
  groups, start = [], 0
  for i, g in sorted(parts.items(), key=lambda kv: -lengths[kv[0]]):
    group = tuple(range(start, start + g))
    start += g
    groups.append(group)
    for j, r in enumerate(group):
      ranks[r].append(Piece(i, j, g))
      load[r] += cost(lengths[i]) / g
  window = max((slice_len(lengths[i], g) for i, g in parts.items()), default=0)
  for g in groups:
    used[list(g)] = window  # every group rank reserves the travelling window
  for i in sorted((i for i in range(len(lengths)) if i not in parts), key=lambda i: -lengths[i]):
    fits = [r for r in range(num_ranks) if used[r] + lengths[i] <= capacity]
    if not fits:
      return None
    r = min(fits, key=lambda r: (load[r], used[r]))
    ranks[r].append(Piece(i))
    used[r] += lengths[i]
    load[r] += cost(lengths[i])
  return HDPPlan(tuple(lengths), capacity, tuple(tuple(p) for p in ranks), tuple(groups), int(window))


def pack(sequences: Sequence[Sequence[int]], plan: HDPPlan) -> dict[str, np.ndarray]:
  """Lays the sequences out as the plan says: [R, C] arrays for the model and the loss.

  Args:
    sequences: token lists; sequence i has plan.lengths[i] + 1 tokens (inputs and the shifted targets).
  Returns:
    dict of [R, C] arrays: tokens, targets (int32), loss_mask (float32), positions (int32, true positions),
    segment_ids (int32; sequence i has id i + 1, each padding slot its own negative id).
  """
  r, c = len(plan.ranks), plan.capacity
  out = {k: np.zeros((r, c), np.int32) for k in ("tokens", "targets", "positions")}
  # Padding gets a unique negative id per slot: it sees only itself, so its attention blocks are skipped.
  pad_ids = -1 - np.arange(r * c, dtype=np.int32).reshape(r, c)
  out["segment_ids"] = pad_ids.copy()
  out["loss_mask"] = np.zeros((r, c), np.float32)
  for rank, pieces in enumerate(plan.ranks):
    at = 0
    for p in pieces:
      seq = np.asarray(sequences[p.seq])
      n = plan.lengths[p.seq]
      if len(seq) != n + 1:
        raise ShapeError(f"sequence {p.seq} has {len(seq)} tokens; the plan expects {n} + 1 (inputs and targets)")
      if p.parts == 1:
        idx = np.arange(n)
      else:
        width = slice_len(n, p.parts)
        perm = layout_permutation(width * p.parts, p.parts, "zigzag")
        idx = perm[p.part * width:(p.part + 1) * width]
      real = idx < n
      span = slice(at, at + len(idx))
      out["tokens"][rank, span] = np.where(real, seq[np.minimum(idx, n - 1)], 0)
      out["targets"][rank, span] = np.where(real, seq[np.minimum(idx, n - 1) + 1], 0)
      out["positions"][rank, span] = idx
      out["segment_ids"][rank, span] = np.where(real, p.seq + 1, pad_ids[rank, span])
      out["loss_mask"][rank, span] = real
      at += plan.window if p.parts > 1 else len(idx)
  return out


def pack_padded(sequences: Sequence[Sequence[int]], rows: int | None = None) -> dict[str, np.ndarray]:
  """The plain data-parallel batch: one sequence per row, right-padded to the longest ([N, L_max] arrays).

  Args:
    sequences: token lists (inputs and the shifted target).  rows: pad the batch with empty rows to this many.
  """
  n = max(len(s) for s in sequences) - 1
  rows = rows or len(sequences)
  out = {k: np.zeros((rows, n), np.int32) for k in ("tokens", "targets")}
  out["loss_mask"] = np.zeros((rows, n), np.float32)
  for i, s in enumerate(sequences):
    s = np.asarray(s)
    out["tokens"][i, :len(s) - 1], out["targets"][i, :len(s) - 1] = s[:-1], s[1:]
    out["loss_mask"][i, :len(s) - 1] = 1.0
  return out


def round_robin_plan(lengths: Sequence[int], num_ranks: int) -> HDPPlan:
  """Plain data parallelism for comparison: sequence i whole on rank i mod R, no rings; capacity = fullest rank."""
  lengths = tuple(int(n) for n in lengths)
  ranks = tuple(tuple(Piece(i) for i in range(r, len(lengths), num_ranks)) for r in range(num_ranks))
  capacity = max(sum(lengths[p.seq] for p in pieces) for pieces in ranks)
  return HDPPlan(lengths, capacity, ranks, (), 0)


def ring_bytes(plan: HDPPlan, bytes_per_token: int) -> int:
  """Bytes one attention layer's forward moves between ranks: each group rank sends its window g - 1 times.

  Args:
    bytes_per_token: K and V of one token (2 * K * H * itemsize) plus its position and segment id (8).
  """
  return sum(len(g) * (len(g) - 1) * plan.window * bytes_per_token for g in plan.groups)


def _check_ranks(plan: HDPPlan, mesh, rules) -> None:
  from lcjax.sharding import axes as ax
  from lcjax.sharding.mesh import mesh_sizes
  from lcjax.sharding.rules import get_rules, resolve

  spec = resolve((ax.ACT_BATCH,), get_rules(rules), mesh_sizes(mesh))  # the data-parallel ranks of this mesh
  first = spec[0] if len(spec) else None
  names = () if first is None else (first,) if isinstance(first, str) else tuple(first)
  ranks = math.prod(mesh.shape[a] for a in names)
  if ranks != len(plan.ranks):
    raise ShapeError(f"the HDP plan has {len(plan.ranks)} ranks but the batch is split over {ranks} "
                     f"(mesh axes {names or 'none'} under rule set {get_rules(rules).name!r}); schedule for {ranks}")


def _batch_shardings(plan: HDPPlan, mesh, rules):
  from lcjax.sharding.partition import batch_shardings

  _check_ranks(plan, mesh, rules)
  shapes = {k: np.zeros((len(plan.ranks), plan.capacity), np.int32) for k in
            ("tokens", "targets", "loss_mask", "positions", "segment_ids")}
  return batch_shardings(shapes, mesh, rules)


def make_hdp_grad_step(loss_fn: Callable, mesh, rules, param_shardings, plan: HDPPlan) -> Callable:
  """A sharded `(params, batch) -> (loss, aux, grads)` for batches packed by `pack(..., plan)`.

  The model must use `attention_impl="hdp"`. One compile per call; reuse the step for plans with the same
  `ring_layout` and capacity (the layout is static, the packed arrays are not).
  """
  from lcjax.sharding import steps

  return steps.make_grad_step(loss_fn, mesh, rules, param_shardings, _batch_shardings(plan, mesh, rules),
                              extras={"hdp": plan.ring_layout})


def make_hdp_train_step(loss_fn: Callable, optimizer, mesh, rules, param_shardings, opt_shardings,
                        plan: HDPPlan) -> Callable:
  """A sharded optimizer step `(params, opt_state, batch) -> (params, opt_state, aux)` for an HDP-packed batch."""
  from lcjax.sharding import steps

  return steps.make_train_step(loss_fn, optimizer, mesh, rules, param_shardings, opt_shardings,
                               _batch_shardings(plan, mesh, rules), extras={"hdp": plan.ring_layout})
