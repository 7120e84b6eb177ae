"""Verifiable rewards: exact checks, LongProc's countdown checker, errors."""

import pytest

from lcjax.errors import RewardError, ShapeError, UnknownNameError
from lcjax.eval.metrics.longproc import build_countdown_demonstration
from lcjax.rl.rewards import REWARDS, evaluate_expression, score


def test_digit_sum():
  p = {"target": 12, "num_digits": 4}
  assert list(score("digit_sum", [p] * 5, ["3900", " 1128\n", "3901", "390", "39a0"])) == [1, 1, 0, 0, 0]


def test_arithmetic_exact():
  assert evaluate_expression("12+7*3") == 33 and evaluate_expression("-(4-9)*2") == 10
  p = {"expression": "3-10*2"}
  assert list(score("arithmetic", [p] * 4, ["-17", " -17 ", "-17.0", "17"])) == [1, 1, 0, 0]
  with pytest.raises(RewardError, match="row 0.*unsupported"):
    score("arithmetic", [{"expression": "__import__('os')"}], ["1"])


def test_countdown_uses_longproc_checker():
  nums, target = [3, 5, 7, 2], 29
  solution, _ = build_countdown_demonstration(nums, target)
  good = "blah <Solution>\n" + "\n".join(solution) + "\n</Solution>"
  bad = "<Solution>\n3 + 5 = 8\n8 * 7 = 56\n56 - 2 = 54\n</Solution>"
  assert list(score("countdown", [{"nums": nums, "target": target}] * 3, [good, bad, "no tag"])) == [1, 0, 0]


def test_passkey_exact_match():
  assert list(score("passkey", [{"answer": "71432"}] * 3, ["71432", "71432 ", "7143"])) == [1, 1, 0]


def test_errors():
  with pytest.raises(UnknownNameError, match="digit_sum"):
    score("digitsum", [{}], ["1"])
  with pytest.raises(RewardError, match="'digit_sum' raised on row 1.*KeyError"):
    score("digit_sum", [{"target": 1, "num_digits": 1}, {}], ["1", "1"])
  with pytest.raises(ShapeError):
    score("passkey", [{"answer": "1"}], [])
  assert set(REWARDS.names()) >= {"digit_sum", "arithmetic", "countdown", "passkey"}
