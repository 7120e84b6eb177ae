"""Saliency metrics (issue 17): identities, hand-computed values on small maps, the all-0 / all-1 cases, bad input."""

import numpy as np
import pytest

from lcjax.errors import ShapeError, ValueRangeError
from lcjax.eval.metrics import METRICS
from lcjax.eval.metrics import saliency as sm

G3 = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], np.uint8)
S2 = np.array([[0.9, 0.2], [0.5, 0.1]])


def _corpus(name, preds, gts):
  metric = METRICS.get(name)
  return metric.aggregate([metric.score(p, g) for p, g in zip(preds, gts)])["score"]


def test_identities_on_the_ground_truth():
  rng = np.random.default_rng(0)
  for seed in range(3):
    g = (np.random.default_rng(seed).random((9, 11)) < 0.4).astype(np.uint8)
    assert sm.mae(g.astype(float), g) == 0.0
    assert sm.fbeta_adaptive(g.astype(float), g)["score"] == pytest.approx(1.0)
    assert sm.s_measure(g.astype(float), g) == pytest.approx(1.0)
    assert _corpus("saliency.max_f", [g.astype(float)], [g]) == pytest.approx(1.0)
  s = rng.random((6, 7))
  zeros, ones = np.zeros((6, 7), np.uint8), np.ones((6, 7), np.uint8)
  assert sm.s_measure(s, zeros) == pytest.approx(1.0 - s.mean())
  assert sm.s_measure(s, ones) == pytest.approx(s.mean())
  assert sm.s_measure(np.zeros((6, 7)), zeros) == 1.0


def test_hand_computed_3x3():
  s = 0.8 * G3
  assert sm.mae(s, G3) == pytest.approx(4 * 0.2 / 9)
  assert sm.fbeta_adaptive(s, G3)["score"] == pytest.approx(1.0)  # T = 2 * 3.2 / 9 = 0.711: exactly the object
  # S_object = 4/9 * 1.6 / 1.64 + 5/9 * 1; every quadrant (split at the centroid (2, 2)) scores 1 -> S_region = 1
  assert sm.s_object(s, G3.astype(bool)) == pytest.approx(4 / 9 * 1.6 / 1.64 + 5 / 9)
  assert sm.s_region(s, G3.astype(bool)) == pytest.approx(1.0)
  assert sm.s_measure(s, G3) == pytest.approx(0.5 * (4 / 9 * 1.6 / 1.64 + 5 / 9) + 0.5)


def test_hand_computed_2x2():
  g = np.array([[1, 0], [0, 1]])
  # adaptive T = 2 * 0.425 = 0.85 -> {0.9}: P = 1, R = 1/2, F = 1.3 * 0.5 / (0.3 + 0.5)
  assert sm.fbeta_adaptive(S2, g)["score"] == pytest.approx(0.8125)
  # thresholds: (127, 229] -> F 0.8125, (51, 127] -> 0.5, (25, 51] -> 0.3611, <= 25 -> 0.5652
  assert _corpus("saliency.max_f", [S2, S2], [g, g]) == pytest.approx(0.8125)
  p, r = sm.pr_curve(S2, g)
  assert (p[255 - 100], r[255 - 100], p[255 - 200], r[255 - 200]) == pytest.approx((0.5, 0.5, 1.0, 0.5))
  assert sm.mae(S2, g) == pytest.approx((0.1 + 0.2 + 0.5 + 0.9) / 4)
  # G = left column: S_object = 0.5 * 1.4 / (1.49 + 0.2828) + 0.5 * 1.7 / (1.7225 + 0.0707); centroid (1, 2) leaves
  # two empty quadrants (weight 0 here, NaN in MATLAB) and two constant-G ones (SSIM 0) -> S_region = 0
  g2 = np.array([[1, 0], [1, 0]])
  o_fg = 1.4 / (0.49 + 1 + np.std([0.9, 0.5], ddof=1))
  o_bg = 1.7 / (0.7225 + 1 + np.std([0.8, 0.9], ddof=1))
  assert sm.s_measure(S2, g2) == pytest.approx(0.5 * (0.5 * o_fg + 0.5 * o_bg))


def test_boundary_band_and_mae():
  g = np.zeros((5, 5), np.uint8)
  g[1:4, 1:4] = 1
  band = sm.boundary_band(g, 1)
  assert band.sum() == 24 and not band[2, 2]
  s = g.astype(float)
  s[0, 0] = 0.5
  assert sm.boundary_mae(s, g, band=1)["score"] == pytest.approx(0.5 / 24)
  assert sm.boundary_mae(s, np.zeros((5, 5)))["skip"]


def test_empty_ground_truth_is_left_out_of_f():
  g = np.zeros((4, 4), np.uint8)
  g[1:3, 1:3] = 1
  assert _corpus("saliency.fbeta_adaptive", [g * 1.0, np.zeros((4, 4))], [g, np.zeros((4, 4))]) == 1.0
  assert _corpus("saliency.mae", [g * 1.0, np.full((4, 4), 0.5)], [g, np.zeros((4, 4))]) == 0.25


def test_bad_input_raises():
  with pytest.raises(ShapeError, match="same size"):
    sm.mae(np.zeros((4, 4)), np.zeros((4, 5)))
  with pytest.raises(ValueRangeError, match="binary"):
    sm.s_measure(np.zeros((2, 2)), np.array([[0, 255], [0, 0]]))
  with pytest.raises(ValueRangeError, match=r"\[0, 1\]"):
    sm.mae(np.full((2, 2), 1.5), np.zeros((2, 2)))
