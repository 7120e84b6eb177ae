"""The computation allocation model of long-context RAG (Yue et al., ICLR'25, "Inference Scaling for Long-Context
RAG", §5): predicted performance of a configuration theta = (k documents, m shots, n iterations).

  sigma^{-1}(P(theta)) ~= (a + b * i)^T log(theta + eps) + c                  (natural log, eps = 0.01)
  sigma(x) = R / (1 + exp(-t (x - s))) + o;   sigma^{-1}(y) = s - ln(R / (y - o) - 1) / t

i = (i_doc, i_shot, 0) is the informativeness of the task (the gain of one document / one shot over zero-shot);
b_3 = 0, so the linear model has 6 coefficients (a: 3, b: 2, c: 1), fitted by ordinary least squares on
sigma^{-1}(P). For a budget L_max of effective context tokens the predicted-optimal configuration is the argmax of
sigma(linear) over the grid points with l(theta) <= L_max. There is no official code: the constants below are the
paper's published values (see ../shared/papers/inference_rag.md §5).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np

from lcjax.errors import ConfigError, ShapeError

EPS = 0.01


@dataclasses.dataclass(frozen=True)
class Sigma:
  """The scaled sigmoid sigma(x) = R / (1 + exp(-t (x - s))) + o with range (o, o + R)."""

  R: float = 3.30
  t: float = 1.81
  s: float = -0.46
  o: float = -2.18

  def __call__(self, x):
    return self.R / (1.0 + np.exp(-self.t * (np.asarray(x, np.float64) - self.s))) + self.o

  def inverse(self, y):
    """sigma^{-1}(y) = s - ln(R / (y - o) - 1) / t; y must lie strictly inside (o, o + R)."""
    y = np.asarray(y, np.float64)
    lo, hi = self.o, self.o + self.R
    if np.any(y <= lo) or np.any(y >= hi):
      raise ConfigError(f"sigma^-1 is defined on ({lo:g}, {hi:g}); got values in [{y.min():g}, {y.max():g}] "
                        f"(clip P into the open range first)")
    return self.s - np.log(self.R / (y - self.o) - 1.0) / self.t


@dataclasses.dataclass(frozen=True)
class AllocationModel:
  """Coefficients a [3], b [3] (b[2] = 0), c and the sigma transform."""

  a: tuple[float, float, float]
  b: tuple[float, float, float]
  c: float
  sigma: Sigma = Sigma()
  eps: float = EPS

  def linear(self, theta, info) -> np.ndarray:
    """(a + b * i)^T log(theta + eps) + c for theta [..., 3] and informativeness i [..., 3] (or [3])."""
    return features(theta, info, self.eps) @ self.coefficients

  def predict(self, theta, info) -> np.ndarray:
    """Predicted performance P-hat = sigma(linear)."""
    return self.sigma(self.linear(theta, info))

  @property
  def coefficients(self) -> np.ndarray:
    """[6]: a1 a2 a3 b1 b2 c (the order of `features`' columns)."""
    return np.array([*self.a, self.b[0], self.b[1], self.c], np.float64)


# The paper's fitted constants (Gemini 1.5 Flash, pooled over its four datasets).
PAPER = AllocationModel(a=(0.325, 0.101, 0.177), b=(-0.067, -0.008, 0.0), c=-0.730)


def features(theta, info, eps: float = EPS) -> np.ndarray:
  """Design matrix [N, 6] = [log(theta+eps) (3), i_doc log(k+eps), i_shot log(m+eps), 1].

  Args:
    theta: [N, 3] (or [3]) configurations (k, m, n).  info: [N, 3] or [3] informativeness (third entry ignored).
  """
  theta = np.atleast_2d(np.asarray(theta, np.float64))
  if theta.shape[-1] != 3:
    raise ShapeError(f"theta must have 3 entries (k, m, n) per row, got shape {theta.shape}")
  if np.any(theta < 0):
    raise ConfigError(f"theta entries must be >= 0, got {theta[np.any(theta < 0, axis=1)][0].tolist()}")
  info = np.broadcast_to(np.asarray(info, np.float64), theta.shape)
  logs = np.log(theta + eps)
  return np.concatenate([logs, info[:, :2] * logs[:, :2], np.ones((len(theta), 1))], axis=1)


@dataclasses.dataclass(frozen=True)
class Fit:
  """A fitted model with R^2 of the linear fit in sigma^{-1} space and of P itself."""

  model: AllocationModel
  r2_linear: float
  r2: float


def _r2(y, y_hat) -> float:
  ss = float(np.sum((y - np.mean(y)) ** 2))
  return 1.0 - float(np.sum((y - y_hat) ** 2)) / ss if ss > 0 else float("nan")


def fit(theta, info, performance, sigma: Sigma = Sigma(), eps: float = EPS, clip: float | None = None) -> Fit:
  """OLS fit of (a, b, c) on sigma^{-1}(P) with sigma fixed.

  Args:
    theta: [N, 3] measured configurations.  info: [N, 3] or [3] informativeness of each row's task.
    performance: [N] measured P (e.g. accuracy).  clip: if set, P is clipped into (o + clip, o + R - clip) first
      (an accuracy of exactly 0 or 1 is inside sigma's range (-2.18, 1.12), so only needed for other metrics).
  Raises:
    ShapeError: fewer rows than the 6 coefficients, or mismatched lengths.
  """
  x = features(theta, info, eps)
  y = np.asarray(performance, np.float64)
  if y.shape != (len(x),):
    raise ShapeError(f"performance has shape {y.shape}; expected ({len(x)},) to match theta")
  if len(x) < x.shape[1]:
    raise ShapeError(f"OLS needs at least {x.shape[1]} measurements, got {len(x)}")
  if clip is not None:
    y = np.clip(y, sigma.o + clip, sigma.o + sigma.R - clip)
  z = sigma.inverse(y)
  coef, *_ = np.linalg.lstsq(x, z, rcond=None)
  model = AllocationModel(a=tuple(coef[:3]), b=(coef[3], coef[4], 0.0), c=float(coef[5]), sigma=sigma, eps=eps)
  return Fit(model, _r2(z, x @ coef), _r2(y, model.predict(theta, info)))


def grid(ks: Sequence[int], ms: Sequence[int], ns: Sequence[int]) -> np.ndarray:
  """All (k, m, n) combinations [N, 3]."""
  return np.array(list(itertools.product(ks, ms, ns)), np.float64)


def budgeted_argmax(model: AllocationModel, theta, lengths, info, budget: float):
  """The grid point with the highest predicted P among those with effective length <= budget.

  Args:
    theta: [N, 3] grid.  lengths: [N] effective context length l(theta) of each point.  budget: L_max in tokens.
  Returns:
    (theta* [3], P-hat*, index). Ties go to the first point (the grid order).
  Raises:
    ConfigError: no point fits the budget.
  """
  lengths = np.asarray(lengths, np.float64)
  ok = lengths <= budget
  if not ok.any():
    raise ConfigError(f"no configuration fits a budget of {budget:g} tokens (smallest l(theta) = {lengths.min():g})")
  p = np.where(ok, model.predict(theta, info), -np.inf)
  idx = int(np.argmax(p))
  return np.asarray(theta, np.float64)[idx], float(p[idx]), idx


def effective_length(theta, doc_tokens: float, question_tokens: float, answer_tokens: float,
                     instruction_tokens: float, step_tokens: float | None = None) -> np.ndarray:
  """Modelled effective context length l(theta) = sum over the LLM calls of the prompt length.

  DRAG (n = 1): one call of  L_inst + m (k L_doc + L_q + L_a) + k L_doc + L_q.
  IterDRAG: call j (1..n) re-reads everything so far; each earlier iteration added k more documents and one
  follow-up/intermediate-answer step of `step_tokens` (default 2 L_a):  l = sum_{j=1..n} (base + (j-1)(k L_doc +
  L_step)). Measured lengths from `lcjax.rag` replace this model in experiments.
  """
  theta = np.atleast_2d(np.asarray(theta, np.float64))
  k, m, n = theta[:, 0], theta[:, 1], np.maximum(theta[:, 2], 1)
  step = 2 * answer_tokens if step_tokens is None else step_tokens
  base = instruction_tokens + m * (k * doc_tokens + question_tokens + answer_tokens) + k * doc_tokens + question_tokens
  return n * base + (n * (n - 1) / 2) * (k * doc_tokens + step)


def optimum_by_budget(model: AllocationModel, theta, lengths, info, budgets: Sequence[float]) -> list[dict]:
  """`budgeted_argmax` for each budget: [{"budget", "k", "m", "n", "p_hat", "length"}] (budgets too small skipped)."""
  rows = []
  for budget in budgets:
    if np.min(lengths) > budget:
      continue
    best, p, idx = budgeted_argmax(model, theta, lengths, info, budget)
    rows.append({"budget": budget, "k": int(best[0]), "m": int(best[1]), "n": int(best[2]), "p_hat": p,
                 "length": float(np.asarray(lengths)[idx])})
  return rows


def default_grid() -> np.ndarray:
  """The paper-style grid: k in {0,1,2,5,10,20,50,100,200,500,1000}, m in {0,1,2,4,8,16,32}, n in 1..5."""
  return grid([0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], [0, 1, 2, 4, 8, 16, 32], [1, 2, 3, 4, 5])

