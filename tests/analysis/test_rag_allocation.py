"""The RAG computation allocation model: sigma round trip, paper constants by hand, OLS recovery, budgeted argmax."""

import json
import math

import numpy as np
import pytest

from lcjax.analysis import rag_allocation as ra
from lcjax.errors import ConfigError, ShapeError


def test_sigma_inverse_round_trip():
  x = np.linspace(-4, 3, 57)
  np.testing.assert_allclose(ra.Sigma().inverse(ra.Sigma()(x)), x, atol=1e-9)
  with pytest.raises(ConfigError, match=r"\(-2.18, 1.12\)"):
    ra.Sigma().inverse([1.2])


@pytest.mark.parametrize("theta,info,linear,p", [
    ((10, 4, 1), (0, 0, 0), 0.1607, 0.3103),
    ((50, 8, 1), (0.5, 0.2, 0), 0.6190, 0.7100),
    ((0, 0, 1), (0, 0, 0), -2.690, -2.1227),
])
def test_paper_constants_by_hand(theta, info, linear, p):
  # By hand: 0.325 ln(10.01) + 0.101 ln(4.01) + 0.177 ln(1.01) - 0.730 = 0.74867 + 0.14027 + 0.00176 - 0.730.
  k, m, n = theta
  i_d, i_s, _ = info
  hand = ((0.325 - 0.067 * i_d) * math.log(k + 0.01) + (0.101 - 0.008 * i_s) * math.log(m + 0.01)
          + 0.177 * math.log(n + 0.01) - 0.730)
  assert float(ra.PAPER.linear(theta, info)[0]) == pytest.approx(hand, abs=1e-12)
  assert hand == pytest.approx(linear, abs=6e-4)
  assert float(ra.PAPER.predict(theta, info)[0]) == pytest.approx(p, abs=6e-4)
  assert 3.30 / (1 + math.exp(-1.81 * (hand + 0.46))) - 2.18 == pytest.approx(p, abs=6e-4)


def _synthetic():
  theta = ra.grid([0, 1, 2, 5, 10, 20], [0, 1, 2, 4], [1, 2, 3])
  info = np.tile([[0.5, 0.2, 0.0]], (len(theta), 1))
  info[::2] = [0.1, 0.7, 0.0]  # two "datasets" so b is identifiable
  true = ra.AllocationModel(a=(0.3, 0.12, 0.2), b=(-0.05, -0.01, 0.0), c=-0.6)
  return theta, info, true


def test_ols_recovers_coefficients():
  theta, info, true = _synthetic()
  fit = ra.fit(theta, info, true.predict(theta, info))
  np.testing.assert_allclose(fit.model.coefficients, true.coefficients, atol=1e-6)
  assert fit.r2 == pytest.approx(1.0)
  noisy = true.predict(theta, info) + np.random.default_rng(0).normal(0, 0.01, len(theta))
  np.testing.assert_allclose(ra.fit(theta, info, noisy).model.coefficients, true.coefficients, atol=1e-2)
  with pytest.raises(ShapeError, match="at least 6"):
    ra.fit(theta[:5], info[:5], true.predict(theta[:5], info[:5]))


def test_budgeted_argmax_brute_force_and_monotone():
  theta = ra.default_grid()
  lengths = ra.effective_length(theta, 128, 32, 16, 64)
  info = (0.4, 0.3, 0.0)
  p = ra.PAPER.predict(theta, info)
  previous = -np.inf
  for budget in [2_000, 8_000, 16_384, 32_768, 100_000, 500_000, 2_000_000]:
    best, p_hat, idx = ra.budgeted_argmax(ra.PAPER, theta, lengths, info, budget)
    brute = max((p[i], -i) for i in range(len(theta)) if lengths[i] <= budget)
    assert (p_hat, -idx) == brute and lengths[idx] <= budget
    assert p_hat >= previous
    previous = p_hat
  with pytest.raises(ConfigError, match="no configuration fits"):
    ra.budgeted_argmax(ra.PAPER, theta, lengths, info, 10)


def test_effective_length_model():
  # DRAG: 64 + 2 (3*128 + 32 + 16) + 3*128 + 32 = 1344; IterDRAG n=3 adds 3 iterations' re-reads.
  assert ra.effective_length((3, 2, 1), 128, 32, 16, 64)[0] == 1344
  assert ra.effective_length((3, 2, 3), 128, 32, 16, 64)[0] == 3 * 1344 + 3 * (3 * 128 + 32)
  assert ra.grid([1], [2], [3]).tolist() == [[1, 2, 3]]


def test_cli_analyze_rag(capsys):
  from lcjax.cli import main

  assert main(["analyze", "rag", "--budget", "32Ki", "--json"]) == 0
  out = capsys.readouterr().out
  row = json.loads(out)[0]
  assert row["budget"] == 32768 and row["length"] <= 32768 and {"k", "m", "n"} <= set(row)
