"""`topk_select`: the radix-threshold path (long rows) picks exactly what a stable sort picks, ties by lower index,
ineligible (-inf) items never valid; short rows (lax.top_k) agree."""

import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.kvcache.select import kth_largest_bits, topk_select


def _reference(scores, m):
  """The m best per row by a stable sort on -score (ties: lower index), finite ones only."""
  order = np.argsort(-scores, axis=-1, kind="stable")[..., :m]
  out = []
  for row in np.ndindex(scores.shape[:-1]):
    out.append(sorted(i for i in order[row] if np.isfinite(scores[row][i])))
  return out


@pytest.mark.parametrize("shape,m", [((2, 3, 1500), 200), ((1, 2, 1024), 1024), ((2, 1, 4096), 37), ((3, 50), 9)])
def test_topk_select_equals_stable_sort_with_ties_and_ineligible_items(shape, m):
  r = np.random.default_rng(m)
  scores = r.integers(-4, 5, shape).astype(np.float32)          # many ties at every threshold
  scores[..., ::5] = -np.inf
  if len(shape) == 3:
    scores[0, 0, 100:] = -np.inf                                 # a row with fewer finite items than m
  idx, counts = topk_select(jnp.asarray(scores), m)
  got = [sorted(np.asarray(idx)[row][:int(counts[row])].tolist()) for row in np.ndindex(shape[:-1])]
  assert got == _reference(scores, m)


def test_kth_largest_bits_orders_like_floats():
  scores = jnp.asarray([[-jnp.inf, -3.5, -0.0, 0.0, 1e-30, 2.0, 7.25, 7.25]], jnp.float32)
  bits = [int(kth_largest_bits(scores, m)[0]) for m in range(1, 9)]
  assert bits == sorted(bits, reverse=True)
  assert bits[0] == bits[1] and bits[6] > bits[7]               # the tie at 7.25; -3.5 above -inf
