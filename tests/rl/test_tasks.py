"""RL tasks: the codec round-trips, and format-only demos score at chance (not by construction correct)."""

import numpy as np
import pytest

from lcjax.errors import ConfigError
from lcjax.rl.rewards import score
from lcjax.rl.tasks import RL_TASKS, CharCodec
from lcjax.rl.warmstart import demo_batch


def test_codec_and_demos():
  codec = CharCodec()
  assert codec.decode(codec.encode("17:0389")) == "17:0389" and codec.vocab_size == 80
  with pytest.raises(ConfigError, match="alphabet"):
    codec.encode("é")
  rng = np.random.default_rng(0)
  for name in RL_TASKS.names():
    task = RL_TASKS.get(name)
    prompts = task.make(rng, 400)
    rewards = score(task.reward, prompts, [task.demo(rng, p) for p in prompts])
    assert rewards.mean() < 0.2, name  # format only: about chance
  rewards = score("digit_sum", prompts := RL_TASKS.get("digit_sum").make(rng, 2000),
                  [RL_TASKS.get("digit_sum").demo(rng, p) for p in prompts])
  assert 0.03 < rewards.mean() < 0.09  # P(4 random digits sum to S), S uniform in [10, 30]
  b = demo_batch("digit_sum", rng, 4, 16)
  assert b["loss_mask"].sum(1).tolist() == [5.0] * 4  # 4 digits + eos
