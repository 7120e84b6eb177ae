"""Connectivity targets and decoding (issue 17 checks): BiconNet channel order, pair symmetry, the round trip
(exact iff no isolated foreground pixel), the edge identity, bilateral voting by hand, bad input."""

import numpy as np
import pytest

from lcjax.errors import ShapeError, UnknownNameError, ValueRangeError
from lcjax.vision import connectivity as cn
from lcjax.vision.losses import bce_with_logits, connectivity_loss, saliency_loss


def _sal2conn(mask: np.ndarray) -> np.ndarray:
  """BiconNet's `sal2conn` transcribed with its named shifts (channel-first [8, H, W])."""
  rows, cols = mask.shape
  z = lambda: np.zeros((rows, cols))  # noqa: E731
  up, down, left, right = z(), z(), z(), z()
  up_left, up_right, down_left, down_right = z(), z(), z(), z()
  up[:rows - 1, :] = mask[1:rows, :]
  down[1:rows, :] = mask[0:rows - 1, :]
  left[:, :cols - 1] = mask[:, 1:cols]
  right[:, 1:cols] = mask[:, :cols - 1]
  up_left[0:rows - 1, 0:cols - 1] = mask[1:rows, 1:cols]
  up_right[0:rows - 1, 1:cols] = mask[1:rows, 0:cols - 1]
  down_left[1:rows, 0:cols - 1] = mask[0:rows - 1, 1:cols]
  down_right[1:rows, 1:cols] = mask[0:rows - 1, 0:cols - 1]
  return np.stack([mask * s for s in (down_right, down, down_left, right, left, up_right, up, up_left)])


def _random_mask(seed: int, size: int = 12, p: float = 0.45) -> np.ndarray:
  return (np.random.default_rng(seed).random((size, size)) < p).astype(np.uint8)


def _neighbours(mask: np.ndarray, r: int, c: int):
  """The 8 neighbour values of (r, c), 0 outside the image."""
  h, w = mask.shape
  return [mask[r + dr, c + dc] if 0 <= r + dr < h and 0 <= c + dc < w else 0 for dr, dc in cn.OFFSETS]


def test_encode_matches_biconnet_order_and_pair_symmetry():
  mask = _random_mask(0)
  conn = np.asarray(cn.encode(mask))
  np.testing.assert_array_equal(conn, np.moveaxis(_sal2conn(mask.astype(float)), 0, -1))
  for c, (dr, dc) in enumerate(cn.OFFSETS):
    assert cn.OFFSETS[7 - c] == (-dr, -dc)
    for r in range(12):
      for col in range(12):
        if 0 <= r + dr < 12 and 0 <= col + dc < 12:
          assert conn[r, col, c] == conn[r + dr, col + dc, 7 - c]


@pytest.mark.parametrize("rule", ["any", "bilateral"])
def test_round_trip_is_exact_iff_no_isolated_pixels(rule):
  for seed in range(4):
    mask = _random_mask(seed)
    lone = np.asarray(cn.isolated(mask))
    out = np.asarray(cn.decode(cn.encode(mask), rule))
    np.testing.assert_array_equal(out, mask * ~lone)  # in general: G minus its isolated pixels
    assert np.array_equal(out, mask) == (not lone.any())
  solid = np.zeros((8, 8), np.uint8)
  solid[2:6, 1:7] = 1
  np.testing.assert_array_equal(cn.decode(cn.encode(solid), rule), solid)
  solid[0, 7] = 1  # one isolated pixel: it vanishes
  assert np.asarray(cn.decode(cn.encode(solid), rule))[0, 7] == 0


def test_mean_decoding_is_below_one_on_the_boundary_only():
  mask = np.zeros((8, 8), np.uint8)
  mask[2:6, 2:6] = 1
  out = np.asarray(cn.decode(cn.encode(mask), "mean"))
  assert out[3, 3] == 1.0 and out[2, 2] == 3 / 8 and out[2, 3] == 5 / 8 and out[0, 0] == 0.0


def test_edge_identity_is_the_boundary():
  for seed in range(3):
    mask = _random_mask(seed, p=0.6)
    got = np.asarray(cn.edge(cn.encode(mask)))
    for r in range(12):
      for c in range(12):
        nb = _neighbours(mask, r, c)
        boundary = mask[r, c] == 1 and 0 < sum(nb) < 8  # foreground, some fg and some bg (or outside) neighbour
        assert got[r, c] == boundary


def test_bilateral_voting_by_hand():
  probs = np.zeros((2, 2, 8), np.float32)
  probs[0, 0, 4] = 0.8  # (0,0) -> right neighbour (0,1)
  probs[0, 1, 3] = 0.5  # (0,1) -> left neighbour (0,0)
  probs[0, 0, 7] = 0.9  # (0,0) -> (1,1), but (1,1) does not vote back
  out = np.asarray(cn.decode(probs, "bilateral"))
  np.testing.assert_allclose(out, [[0.4, 0.4], [0.0, 0.0]])
  np.testing.assert_allclose(cn.decode(probs, "any"), [[0.9, 0.5], [0.0, 0.0]])
  np.testing.assert_allclose(cn.decode(probs, "mean"), [[1.7 / 8, 0.5 / 8], [0.0, 0.0]])


def test_connectivity_loss_is_the_mean_bce_and_the_edge_term():
  rng = np.random.default_rng(1)
  mask = _random_mask(2, 8)[None]
  logits = rng.normal(size=(1, 8, 8, 8)).astype(np.float32)
  target = np.moveaxis(_sal2conn(mask[0].astype(float)), 0, -1)[None]
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  per = -(target * np.log(p) + (1 - target) * np.log(1 - p))
  loss, aux = connectivity_loss(logits, mask)
  np.testing.assert_allclose(loss, per.mean(), rtol=1e-5)
  edge = np.asarray(cn.edge(target))
  loss2, _ = connectivity_loss(logits, mask, edge_weight=2.0)
  np.testing.assert_allclose(loss2, per.mean() + 2.0 * per.mean(-1)[edge].mean(), rtol=1e-5)
  np.testing.assert_allclose(bce_with_logits(np.float32(50.0), np.float32(0.0)), 50.0, rtol=1e-6)
  base, _ = saliency_loss(logits[..., :1], mask)
  np.testing.assert_allclose(base, -(mask * np.log(p[..., 0]) + (1 - mask) * np.log(1 - p[..., 0])).mean(),
                             rtol=1e-5)


def test_bad_input_raises():
  with pytest.raises(ValueRangeError, match="binary"):
    cn.encode(np.array([[0, 255], [0, 0]]))
  with pytest.raises(ValueRangeError, match="0.5"):
    cn.encode(np.array([[0, 0.5], [1, 0]]))
  with pytest.raises(UnknownNameError, match="bilateral"):
    cn.decode(np.zeros((2, 2, 8)), "vote")
  with pytest.raises(ShapeError, match=r"\[\.\.\., H, W, 8\]"):
    cn.decode(np.zeros((2, 2, 4)), "mean")
  with pytest.raises(ShapeError, match="mask"):
    connectivity_loss(np.zeros((1, 4, 4, 8)), np.zeros((1, 5, 4)))
