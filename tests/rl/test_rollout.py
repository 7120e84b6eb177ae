"""Rollouts: the Generator's sampling log-probs equal a separate forward's (fp32, 1e-5)."""

import jax
import numpy as np
from flax import nnx

from lcjax.inference.generate import Generator
from lcjax.inference.sampling import SamplingConfig
from lcjax.models.build import init_model
from lcjax.rl.rollout import rollout, sequence_logprobs
from lcjax.rl.tasks import RL_TASKS, CharCodec
from tests.tiny import TINY


def test_rollout_logprobs_match_forward():
  graphdef, params = nnx.split(init_model(TINY, 0))
  codec, task = CharCodec(), RL_TASKS.get("digit_sum")
  prompts = task.make(np.random.default_rng(0), 3)
  out = rollout(Generator(TINY, graphdef, pad_to=16), params, prompts, codec, group_size=2, max_new_tokens=8,
                seq_len=16, reward=task.reward, rng=jax.random.PRNGKey(1), sampling=SamplingConfig(temperature=1.0))
  b = out.batch
  assert b["tokens"].shape == (6, 16) and out.rewards.shape == (6,)
  assert np.all(b["loss_mask"].sum(1) == out.response_lengths) and out.response_lengths.min() >= 1
  ref = sequence_logprobs(nnx.merge(graphdef, params), b["tokens"], b["positions"], b["targets"])
  m = b["loss_mask"] > 0
  np.testing.assert_allclose(b["old_logp"][m], np.asarray(ref)[m], atol=1e-5)
  assert b["old_logp"].dtype == np.float32 and np.all(b["old_logp"][m] < 0)
