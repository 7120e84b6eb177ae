"""RL loop on the 8-device CPU mesh: exact resume from orbax checkpoints, metrics, config errors."""

import dataclasses
import os

import jax
import numpy as np
import pytest
from flax import nnx

from lcjax.errors import ConfigError, UnknownNameError
from lcjax.models.build import init_model
from lcjax.rl.rewards import REWARDS
from lcjax.rl.train import RLConfig, rl_train
from lcjax.training.config import CheckpointConfig
from lcjax.training.metrics import read_jsonl
from tests.tiny import TINY

# A random policy almost never solves digit_sum; this reward (any digit in the response) gives varied groups, so the
# updates are non-zero and resume is tested on a moving trajectory.
if "test_any_digit" not in REWARDS:
  REWARDS.register("test_any_digit", lambda p, r: float(any(c.isdigit() for c in r)))
CFG = RLConfig(model=TINY, task="digit_sum", loss="cispo", eps_low=1.0, eps_high=0.28, prompts_per_batch=4,
               group_size=4, updates_per_batch=2, seq_len=16, iterations=3, checkpoint=CheckpointConfig(every=1),
               reward="test_any_digit")


def test_crashed_run_resumes_exactly(tmp_path):
  assert len(jax.devices()) == 8
  init = nnx.split(init_model(TINY, CFG.seed))[1]  # what rl_train starts from without init_params
  ref = rl_train(CFG, str(tmp_path / "ref"), init_params=init)
  assert np.isfinite(np.asarray(jax.tree.leaves(init)[0])).all()  # the caller's params were not donated
  first = rl_train(dataclasses.replace(CFG, stop_at=2), str(tmp_path / "run"))
  assert first["iteration"] == 2
  second = rl_train(CFG, str(tmp_path / "run"))
  assert [r["iteration"] for r in second["history"]] == [3]
  logged = read_jsonl(os.path.join(tmp_path / "run", "metrics.jsonl"))
  assert [r["loss"] for r in logged] == [r["loss"] for r in ref["history"]]
  for a, b in zip(jax.tree.leaves(second["params"]), jax.tree.leaves(ref["params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert all(r["grad_norm"] > 0 for r in ref["history"]), ref["history"]
  rec = ref["history"][-1]
  assert rec["zero_grad_fraction"] < 1.0 and rec["kl_rollout"] >= 0.0 and 0 < rec["success"] < 1


def test_bad_configs():
  with pytest.raises(UnknownNameError, match="cispo"):
    dataclasses.replace(CFG, loss="cisp")
  with pytest.raises(UnknownNameError, match="digit_sum"):
    dataclasses.replace(CFG, task="digitsum")
  with pytest.raises(ConfigError, match="updates_per_batch"):
    dataclasses.replace(CFG, updates_per_batch=3)
  with pytest.raises(ConfigError, match="eps_high"):
    dataclasses.replace(CFG, eps_high=-0.1)
  with pytest.raises(UnknownNameError, match="reward"):
    dataclasses.replace(CFG, reward="nope")


def test_cispo_experiment_configs_build():
  from lcjax.config import from_dict
  from lcjax.launch.experiments import load_experiment

  exp = load_experiment(os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "cispo.py"))
  arms = []
  exp.sweep(lambda arg: arms.append(arg))
  assert len(arms) == 9
  cfgs = [from_dict(RLConfig, exp.get_config("runlocal," + a).rl, "rl.") for a in arms]
  assert {c.loss for c in cfgs} == {"grpo", "dapo", "cispo"} and all(c.model.vocab_size == 80 for c in cfgs)
