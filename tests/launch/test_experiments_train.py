"""Every experiment config builds (training sections into TrainConfig), every sweep point builds through the
XManager launcher's dry run, and the absl launcher applies --config overrides and rejects unknown keys."""

import glob
import os
import subprocess
import sys

import pytest

from lcjax.errors import ConfigError
from lcjax.launch.experiments import load_experiment
from lcjax.launch.xm import build_jobs
from lcjax.training.config import train_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENTS = sorted(glob.glob(os.path.join(REPO, "experiments", "*.py")))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[os.path.basename(p) for p in EXPERIMENTS])
@pytest.mark.parametrize("arg", ["runlocal", None])
def test_every_experiment_config_builds(path, arg):
  module = load_experiment(path)
  cfg = module.get_config(arg)
  if "train" in cfg:
    tc = train_config(cfg.train)
    assert tc.steps >= 1 and tc.data.sources
  jobs = build_jobs(f"{path}:{arg}" if arg else path, "/tmp/wd")
  assert jobs and all(j["args"][1].startswith("--workdir=/tmp/wd/") for j in jobs)


def test_sweep_points_become_flags():
  jobs = build_jobs(os.path.join(REPO, "experiments", "prolong.py") + ":runlocal", "/w")
  assert len(jobs) == 3 and any(a.startswith("--config.train.data.sources=") for a in jobs[0]["args"])
  jobs = build_jobs(os.path.join(REPO, "experiments", "passkey.py") + ":runlocal", "/w")
  assert [j["args"][0].split(":")[1] for j in jobs] == [f"runlocal,variant={v}" for v in
                                                        ("rope", "pi", "e2llm", "abf")]


def test_dry_run_without_xmanager_and_unknown_override_key():
  env = {**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": ""}
  out = subprocess.run([sys.executable, "-m", "lcjax.launch.xm", "--config=experiments/llama2_long.py:runlocal",
                        "--workdir=/tmp/sw", "--dry_run"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.strip().splitlines()
  assert len(lines) == 3 and lines[2].endswith("--workdir=/tmp/sw/2")
  assert "theta=500000.0" in lines[2]
  bad = subprocess.run([sys.executable, "-m", "lcjax.launch.main", "--config=experiments/passkey.py:runlocal",
                        "--workdir=/tmp/never", "--config.train.stepz=3"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
  assert bad.returncode != 0 and "stepz" in bad.stderr
  with pytest.raises(ConfigError, match="not found"):
    load_experiment("experiments/nope.py")
