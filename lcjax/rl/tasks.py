"""Verifiable RL tasks (registry `RL_TASKS`) over a character codec, for small policies trained from scratch.

A task makes prompts: `make(rng: np.random.Generator, n) -> list[dict]`, each dict holding "text" (the prompt
string) and the fields its reward in `lcjax.rl.rewards.REWARDS` reads; `demo(rng, prompt) -> str` is a response of
the right *format* with a random answer (format-only SFT warm start: base success ≈ chance, RL must find the rule). `CharCodec` maps text to token ids
(0 pad, 1 bos, 2 eos, then one id per character), so a 96-token model covers every task here.

  digit_sum   "17:" -> 4 digits summing to 17          (arch_rl.md §2(e)'s toy task; reward digit_sum)
  digit_sum2  "11:" -> 2 digits summing to 11 (S in [0, 18]: the same chance rate, an easier rule for tiny models)
  arithmetic  "23+58=" -> "81"                         (reward arithmetic)
  passkey     "..key=48213..." + "key?" -> "48213"     (needle retrieval from a filler context; reward passkey)
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from lcjax.errors import ConfigError
from lcjax.registry import Registry

PAD, BOS, EOS = 0, 1, 2
_CHARS = "0123456789+-*=:?.,()<>/ \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class CharCodec:
  """Text <-> token ids: 0 pad, 1 bos, 2 eos, then `_CHARS` (vocab_size = 3 + len(_CHARS) = 80)."""

  vocab_size = 3 + len(_CHARS)
  eos = EOS

  def __init__(self):
    self._ids = {c: i + 3 for i, c in enumerate(_CHARS)}

  def encode(self, text: str, bos: bool = True) -> list[int]:
    """Token ids of `text` (with a leading bos). Raises ConfigError on a character outside the alphabet."""
    bad = sorted(set(text) - set(self._ids))
    if bad:
      raise ConfigError(f"characters {bad} are not in the codec's alphabet {_CHARS!r}")
    return ([BOS] if bos else []) + [self._ids[c] for c in text]

  def decode(self, ids: Sequence[int]) -> str:
    """Text of ids, dropping special tokens (pad, bos, eos)."""
    return "".join(_CHARS[i - 3] for i in ids if 3 <= i < self.vocab_size)


@dataclasses.dataclass(frozen=True)
class RLTask:
  """make(rng, n) -> n prompt dicts; reward: name in REWARDS; max_new_tokens: response budget;
  demo(rng, prompt) -> a random-answer response of the right format."""

  make: Callable[[np.random.Generator, int], list[dict]]
  reward: str
  max_new_tokens: int
  demo: Callable[[np.random.Generator, dict], str]


def _digits(rng: np.random.Generator, k: int) -> str:
  return "".join(str(int(d)) for d in rng.integers(0, 10, k))


RL_TASKS: Registry[RLTask] = Registry("RL task")


def _digit_sum(rng: np.random.Generator, n: int, num_digits: int = 4, low: int = 10, high: int = 30) -> list[dict]:
  targets = rng.integers(low, high + 1, n)
  return [{"text": f"{int(s)}:", "target": int(s), "num_digits": num_digits} for s in targets]


def _arithmetic(rng: np.random.Generator, n: int) -> list[dict]:
  a, b = rng.integers(10, 100, n), rng.integers(10, 100, n)
  return [{"text": f"{int(x)}+{int(y)}=", "expression": f"{int(x)}+{int(y)}"} for x, y in zip(a, b)]


def _passkey(rng: np.random.Generator, n: int, filler: int = 40) -> list[dict]:
  out = []
  for _ in range(n):
    key = _digits(rng, 5)
    at = int(rng.integers(0, filler))
    hay = "".join(rng.choice(list("abcdefghij"), filler))
    out.append({"text": f"{hay[:at]}key={key}.{hay[at:]}key?", "answer": key})
  return out


RL_TASKS.register("digit_sum", RLTask(_digit_sum, "digit_sum", 8, lambda rng, p: _digits(rng, p["num_digits"])),
                  doc="S: -> 4 digits summing to S in [10, 30]")
RL_TASKS.register("digit_sum2", RLTask(lambda rng, n: _digit_sum(rng, n, 2, 0, 18), "digit_sum", 4,
                                       lambda rng, p: _digits(rng, p["num_digits"])),
                  doc="S: -> 2 digits summing to S in [0, 18]")
RL_TASKS.register("arithmetic", RLTask(_arithmetic, "arithmetic", 6,
                                       lambda rng, p: str(int(rng.integers(20, 199)))),
                  doc="a+b= with two-digit a, b")
RL_TASKS.register("passkey", RLTask(_passkey, "passkey", 8, lambda rng, p: _digits(rng, 5)),
                  doc="5-digit passkey hidden in 40 filler chars")
