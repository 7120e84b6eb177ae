"""Salient object detection metrics, as the standard evaluation code defines them (the MATLAB toolbox shipped with
BiconNets `evaluation/{MAE,Fmeasure,PRCurve,Smeasure,S_object,S_region}.m` and `main.m`; Fan et al. 2017 for S).

A prediction S is a float map in [0, 1] and the ground truth G a binary map of the same size.
  saliency.mae             mean |S - G|; the corpus score is the mean over images.
  saliency.fbeta_adaptive  F_beta (beta^2 = 0.3) of S >= T with T = min(2 mean(S), 1) (`Fmeasure.m`); 0 when no
                           predicted pixel is in G; corpus: mean over images.
  saliency.max_f           precision / recall at the 256 thresholds t/255 (S*255 >= t, t = 0..255, `PRCurve.m`),
                           averaged over images, then max_t 1.3 P R / (0.3 P + R + eps) (`main.m`).
  saliency.s_measure       0.5 S_object + 0.5 S_region; all-0 G: 1 - mean(S); all-1 G: mean(S) (`Smeasure.m`).
  saliency.boundary_mae    MAE inside the band of pixels within `band` (default 2) pixels of G's boundary.
Images whose G is empty have no precision-recall curve (`PRCurve.m` raises, `main.m` skips them); here they are
left out of the two F_beta aggregates (their rows carry "skip": True) and kept in MAE and S.
Deviations from MATLAB: an S_region quadrant with no pixels (the centroid on the last row / column) gets weight 0
instead of producing NaN. Rounding follows MATLAB's round (half away from zero).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lcjax.errors import ShapeError, ValueRangeError
from lcjax.eval.metrics.base import METRICS, Metric, mean_raw, register

BETA2 = 0.3
EPS = np.finfo(np.float64).eps  # MATLAB eps


def check_maps(pred, gt) -> tuple[np.ndarray, np.ndarray]:
  """(S float64 [H, W] in [0, 1], G bool [H, W]); raises on other sizes, values outside [0, 1], non-binary G."""
  s, g = np.asarray(pred, np.float64), np.asarray(gt)
  if s.ndim != 2 or s.shape != g.shape:
    raise ShapeError(f"saliency map and ground truth must be [H, W] of the same size; got {s.shape} and {g.shape}")
  if s.size and (s.min() < 0 or s.max() > 1):
    raise ValueRangeError(f"saliency map values must lie in [0, 1]; got [{s.min():.4g}, {s.max():.4g}]")
  if g.dtype != bool:
    bad = np.unique(g[(g != 0) & (g != 1)])
    if bad.size:
      raise ValueRangeError(f"ground truth must be binary (0/1 or bool); found values {bad[:5].tolist()}")
  return s, g.astype(bool)


def mae(pred, gt) -> float:
  """Mean absolute error between S and G."""
  s, g = check_maps(pred, gt)
  return float(np.mean(np.abs(s - g)))


def fbeta_adaptive(pred, gt) -> dict:
  """F_beta at the adaptive threshold min(2 mean(S), 1) (`Fmeasure.m`)."""
  s, g = check_maps(pred, gt)
  if not g.any():
    return {"score": 0.0, "skip": True}
  binary = s >= min(2.0 * s.mean(), 1.0)
  hits = np.count_nonzero(binary & g)
  if hits == 0:
    return {"score": 0.0, "precision": 0.0, "recall": 0.0}
  p, r = hits / np.count_nonzero(binary), hits / np.count_nonzero(g)
  return {"score": (1 + BETA2) * p * r / (BETA2 * p + r), "precision": p, "recall": r}


def pr_curve(pred, gt) -> tuple[np.ndarray, np.ndarray]:
  """(precision [256], recall [256]) at thresholds 255, 254, ..., 0 on S*255 (`PRCurve.m`)."""
  s, g = check_maps(pred, gt)
  bins = np.minimum(np.floor(s * 255.0), 255).astype(np.int64)  # histc(., 0:255) bins
  fg = np.cumsum(np.bincount(bins[g], minlength=256)[::-1])
  bg = np.cumsum(np.bincount(bins[~g], minlength=256)[::-1])
  return fg / (fg + bg + EPS), fg / max(np.count_nonzero(g), 1)


def _pr_row(pred, gt) -> dict:
  s, g = check_maps(pred, gt)
  if not g.any():
    return {"score": 0.0, "skip": True}
  p, r = pr_curve(s, g)
  f = (1 + BETA2) * p * r / (BETA2 * p + r + EPS)
  return {"score": float(f.max()), "precision": p, "recall": r}


def max_f_aggregate(rows: Sequence[dict]) -> dict:
  """max over thresholds of F_beta of the image-averaged precision and recall curves (`main.m`)."""
  kept = [r for r in rows if not r.get("skip")]
  if not kept:
    return {"score": 0.0, "n": 0}
  p = np.mean([r["precision"] for r in kept], axis=0)
  rc = np.mean([r["recall"] for r in kept], axis=0)
  f = (1 + BETA2) * p * rc / (BETA2 * p + rc + EPS)
  return {"score": float(f.max()), "threshold": int(255 - np.argmax(f)), "n": len(kept)}


def mean_kept(rows: Sequence[dict]) -> dict:
  """Mean score over rows not marked "skip"."""
  return mean_raw([r for r in rows if not r.get("skip")])


def _object(values: np.ndarray) -> float:
  """2 x / (x^2 + 1 + sigma_x + eps) of the values inside a region (`S_object.m` Object)."""
  x = values.mean()
  sigma = values.std(ddof=1) if values.size > 1 else 0.0
  return 2.0 * x / (x * x + 1.0 + sigma + EPS)


def s_object(s: np.ndarray, g: np.ndarray) -> float:
  """Object-aware similarity: u O_FG + (1 - u) O_BG, u = mean(G)."""
  u = g.mean()
  return u * _object(s[g]) + (1 - u) * _object(1.0 - s[~g])


def _ssim(s: np.ndarray, g: np.ndarray) -> float:
  """The region SSIM of `S_region.m` (means, variances and covariance with N - 1)."""
  n = s.size
  gd = g.astype(np.float64)
  x, y = s.mean(), gd.mean()
  sx2 = np.sum((s - x) ** 2) / (n - 1 + EPS)
  sy2 = np.sum((gd - y) ** 2) / (n - 1 + EPS)
  sxy = np.sum((s - x) * (gd - y)) / (n - 1 + EPS)
  alpha, beta = 4 * x * y * sxy, (x * x + y * y) * (sx2 + sy2)
  if alpha != 0:
    return alpha / (beta + EPS)
  return 1.0 if beta == 0 else 0.0


def _matlab_round(v: float) -> int:
  return int(np.floor(v + 0.5))


def s_region(s: np.ndarray, g: np.ndarray) -> float:
  """Region-aware similarity: SSIM of the 4 quadrants split at G's centroid, weighted by their areas."""
  h, w = g.shape
  rows, cols = np.nonzero(g)
  cx, cy = _matlab_round(np.mean(cols + 1)), _matlab_round(np.mean(rows + 1))  # 1-based, as MATLAB
  total = 0.0
  for rs in (slice(0, cy), slice(cy, h)):
    for cs in (slice(0, cx), slice(cx, w)):
      part = s[rs, cs]
      if part.size:
        total += part.size / (h * w) * _ssim(part, g[rs, cs])
  return total


def s_measure(pred, gt) -> float:
  """Structure measure (Fan et al. 2017) with alpha = 0.5."""
  s, g = check_maps(pred, gt)
  y = g.mean()
  if y == 0:
    return float(1.0 - s.mean())
  if y == 1:
    return float(s.mean())
  return float(0.5 * s_object(s, g) + 0.5 * s_region(s, g))


def boundary_band(gt, band: int = 2) -> np.ndarray:
  """Pixels within `band` pixels (Chebyshev distance) of a foreground/background transition of G: bool [H, W]."""
  g = np.asarray(gt).astype(bool)
  h, w = g.shape
  padded = np.pad(g, band, mode="edge")
  lo, hi = g.copy(), g.copy()
  for dr in range(-band, band + 1):
    for dc in range(-band, band + 1):
      win = padded[band + dr:band + dr + h, band + dc:band + dc + w]
      lo &= win
      hi |= win
  return hi & ~lo


def boundary_mae(pred, gt, band: int = 2) -> dict:
  """MAE inside the boundary band of G (skipped when G has no boundary)."""
  s, g = check_maps(pred, gt)
  where = boundary_band(g, band)
  if not where.any():
    return {"score": 0.0, "skip": True}
  return {"score": float(np.mean(np.abs(s[where] - g[where])))}


METRICS.register("saliency.mae", Metric(mae, mean_raw, higher_is_better=False), doc="mean |S - G| (lower is better)")
register("saliency.fbeta_adaptive", fbeta_adaptive, aggregate=mean_kept)
register("saliency.max_f", _pr_row, aggregate=max_f_aggregate, doc="max F_beta over 256 thresholds (PR curves "
         "averaged over images)")
register("saliency.s_measure", s_measure, aggregate=mean_raw)
METRICS.register("saliency.boundary_mae", Metric(boundary_mae, mean_kept, higher_is_better=False),
                 doc="MAE in the 2-pixel band around the object boundary (lower is better)")

SALIENCY_METRICS = ("saliency.mae", "saliency.fbeta_adaptive", "saliency.max_f", "saliency.s_measure",
                    "saliency.boundary_mae")
