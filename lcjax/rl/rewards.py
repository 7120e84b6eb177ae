"""Verifiable rewards (registry `REWARDS`): pure functions `reward(prompt: dict, response: str) -> float`.

  digit_sum    prompt {"target": S, "num_digits": k}: 1 iff the response is exactly k digits summing to S
  arithmetic   prompt {"expression": "12+7*3"}: 1 iff the response is the integer the expression evaluates to
               (+, -, * and parentheses over integers, evaluated exactly from the expression, not a stored answer)
  countdown    prompt {"nums": [4 ints], "target": int}: 1 iff the <Solution> block passes LongProc's checker
               (`lcjax.eval.metrics.longproc.evaluate_countdown_final_solution`)
  passkey      prompt {"answer": str}: 1 iff the stripped response equals the answer (needle / passkey retrieval)

`score(name, prompts, responses)` scores a batch; a reward that raises becomes `RewardError` naming the row.
"""

from __future__ import annotations

import ast
import operator
from typing import Callable, Sequence

import numpy as np

from lcjax.errors import RewardError, ShapeError
from lcjax.eval.metrics.longproc import evaluate_countdown_final_solution, extract_with_tag
from lcjax.registry import Registry

REWARDS: Registry[Callable[[dict, str], float]] = Registry("reward")


@REWARDS.register("digit_sum")
def digit_sum_reward(prompt: dict, response: str) -> float:
  """1.0 iff the response is exactly `num_digits` decimal digits whose sum is `target`."""
  text = response.strip()
  if len(text) != prompt["num_digits"] or not text.isdigit() or not text.isascii():
    return 0.0
  return float(sum(int(c) for c in text) == prompt["target"])


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def evaluate_expression(expression: str) -> int:
  """Exact integer value of an expression of ints, + - * (unary and binary) and parentheses.

  Raises:
    ValueError: anything else in the expression (names, calls, division, floats).
  """

  def ev(node):
    if isinstance(node, ast.Expression):
      return ev(node.body)
    if isinstance(node, ast.Constant) and type(node.value) is int:
      return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
      return _OPS[type(node.op)](ev(node.left), ev(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
      return -ev(node.operand) if isinstance(node.op, ast.USub) else ev(node.operand)
    raise ValueError(f"unsupported element {ast.dump(node)[:60]} in arithmetic expression {expression!r} "
                     f"(accepted: integers, + - * and parentheses)")

  return ev(ast.parse(expression, mode="eval"))


@REWARDS.register("arithmetic")
def arithmetic_reward(prompt: dict, response: str) -> float:
  """1.0 iff the response is exactly the integer value of `expression` (e.g. "-12", no spaces inside)."""
  text = response.strip()
  body = text[1:] if text.startswith("-") else text
  if not body.isdigit() or not body.isascii():
    return 0.0
  return float(int(text) == evaluate_expression(prompt["expression"]))


@REWARDS.register("countdown")
def countdown_reward(prompt: dict, response: str) -> float:
  """1.0 iff the response's <Solution>...</Solution> holds three "a op b = c" lines reaching the target with each
  number used once (LongProc's checker)."""
  solution = extract_with_tag(response, "Solution")
  if solution is None:
    return 0.0
  return float(evaluate_countdown_final_solution(prompt["nums"], prompt["target"], solution))


@REWARDS.register("passkey")
def passkey_reward(prompt: dict, response: str) -> float:
  """1.0 iff the stripped response equals the hidden passkey / needle value `answer` exactly."""
  return float(response.strip() == str(prompt["answer"]).strip())


def score(name: str, prompts: Sequence[dict], responses: Sequence[str]) -> np.ndarray:
  """Rewards [B] float32 of `responses[i]` to `prompts[i]` under the registered reward `name`.

  Raises:
    UnknownNameError: `name` is not registered.  ShapeError: the two lists differ in length.
    RewardError: the reward function raised (the message names the reward, the row and the exception).
  """
  fn = REWARDS.get(name)
  if len(prompts) != len(responses):
    raise ShapeError(f"{len(prompts)} prompts but {len(responses)} responses")
  out = np.zeros(len(prompts), np.float32)
  for i, (p, r) in enumerate(zip(prompts, responses)):
    try:
      out[i] = fn(p, r)
    except Exception as e:  # noqa: BLE001 - any failure of user reward code is reported the same way
      raise RewardError(f"reward {name!r} raised on row {i} (prompt {str(p)[:120]!r}, response {r[:80]!r}): "
                        f"{type(e).__name__}: {e}") from e
  return out
