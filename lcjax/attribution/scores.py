"""Base attribution scores of TracLLM (Wang et al., USENIX Security'25) over a list of nodes (context texts).

A value function maps a batch of coalitions (lists of node strings, in the nodes' original order) to v [C]. Each
score function evaluates all the coalitions it needs in ONE batched call:

  STC_i = v({g_i}) - v(empty)                      (m + 1 coalitions)
  LOO_i = v(G) - v(G minus g_i)                    (m + 1)
  Shapley (Monte Carlo, N permutations): marginal_i = v(prefix + g_i) - v(prefix), coalitions re-sorted to the
    original order; Shapley_i = mean over permutations; denoised Shapley_i = mean of the top max(1, int(N beta))
    marginals (`mean_of_percent`)                   (N (m + 1), as the official code counts them)
  exact Shapley: sum over subsets S of N minus i of |S|! (m - |S| - 1)! / m! (v(S + i) - v(S))   (2^m, m <= 12)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Callable, Sequence

import numpy as np

from lcjax.errors import ConfigError
from lcjax.registry import Registry

Value = Callable[[Sequence[Sequence[str]]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ScoreOptions:
  """sh_n: Monte-Carlo permutations; beta: denoised-Shapley fraction; seed: permutation seed."""

  sh_n: int = 20
  beta: float = 0.2
  seed: int = 12


SCORE_FUNCS: Registry[Callable[[Value, Sequence[str], ScoreOptions], np.ndarray]] = Registry("attribution score")


def mean_of_percent(values: Sequence[float], percent: float = 1.0) -> float:
  """Mean of the largest max(1, int(len * percent)) values (TracLLM's `mean_of_percent`)."""
  ordered = sorted(values, reverse=True)
  top = ordered[:max(1, int(len(ordered) * percent))]
  return sum(top) / len(top) if top else 0.0


def _subset(nodes: Sequence[str], members) -> list[str]:
  return [nodes[i] for i in sorted(members)]


@SCORE_FUNCS.register("stc", doc="single text contribution v({g_i}) - v(empty)")
def stc(value: Value, nodes: Sequence[str], opts: ScoreOptions = ScoreOptions()) -> np.ndarray:
  v = value([[]] + [[g] for g in nodes])
  return v[1:] - v[0]


@SCORE_FUNCS.register("loo", doc="leave one out v(G) - v(G minus g_i)")
def loo(value: Value, nodes: Sequence[str], opts: ScoreOptions = ScoreOptions()) -> np.ndarray:
  m = len(nodes)
  v = value([list(nodes)] + [_subset(nodes, set(range(m)) - {i}) for i in range(m)])
  return v[0] - v[1:]


def permutations(m: int, n: int, seed: int) -> np.ndarray:
  """[n, m] random permutations of range(m) (numpy, seeded)."""
  rng = np.random.default_rng(seed)
  return np.stack([rng.permutation(m) for _ in range(n)]) if m else np.zeros((n, 0), np.int64)


def marginals(value: Value, nodes: Sequence[str], perms: np.ndarray) -> np.ndarray:
  """[N, m] marginal contributions: row r, column i = v(prefix_r up to and incl. i) - v(prefix before i)."""
  n, m = perms.shape
  coalitions = []
  for perm in perms:
    coalitions += [[]] + [_subset(nodes, perm[:j + 1]) for j in range(m)]
  v = value(coalitions).reshape(n, m + 1)
  out = np.zeros((n, m))
  for r, perm in enumerate(perms):
    out[r, perm] = np.diff(v[r])
  return out


@SCORE_FUNCS.register("shapley", doc="Monte-Carlo Shapley value (mean marginal over sh_n permutations)")
def shapley(value: Value, nodes: Sequence[str], opts: ScoreOptions = ScoreOptions()) -> np.ndarray:
  return marginals(value, nodes, permutations(len(nodes), opts.sh_n, opts.seed)).mean(axis=0)


@SCORE_FUNCS.register("denoised_shapley", doc="mean of the top beta fraction of the Monte-Carlo marginals")
def denoised_shapley(value: Value, nodes: Sequence[str], opts: ScoreOptions = ScoreOptions()) -> np.ndarray:
  marg = marginals(value, nodes, permutations(len(nodes), opts.sh_n, opts.seed))
  return np.array([mean_of_percent(marg[:, i].tolist(), opts.beta) for i in range(len(nodes))])


@SCORE_FUNCS.register("exact_shapley", doc="exact Shapley value over all 2^m subsets (m <= 12)")
def exact_shapley(value: Value, nodes: Sequence[str], opts: ScoreOptions = ScoreOptions()) -> np.ndarray:
  m = len(nodes)
  if m > 12:
    raise ConfigError(f"exact Shapley needs 2^m coalitions; m={m} > 12 (use shapley with sh_n permutations)")
  subsets = [s for r in range(m + 1) for s in itertools.combinations(range(m), r)]
  v = dict(zip(subsets, value([_subset(nodes, s) for s in subsets])))
  phi = np.zeros(m)
  for s in subsets:
    weight = math.factorial(len(s)) * math.factorial(m - len(s) - 1) / math.factorial(m) if len(s) < m else 0.0
    for i in set(range(m)) - set(s):
      phi[i] += weight * (v[tuple(sorted(s + (i,)))] - v[s])
  return phi


def score(name: str, value: Value, nodes: Sequence[str], opts: ScoreOptions = ScoreOptions()) -> np.ndarray:
  """Scores of `nodes` under the registered score function `name` (UnknownNameError lists the known ones)."""
  return np.asarray(SCORE_FUNCS.get(name)(value, nodes, opts), np.float64)
