"""Loading experiment files (`experiments/<name>.py` with `get_config(arg)` and `sweep(add, arg)`)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

from lcjax.errors import ConfigError


def load_experiment(path: str):
  """Imports an experiment file as a module (it must define get_config and sweep)."""
  if not os.path.isfile(path):
    raise ConfigError(f"experiment file not found: {path}")
  root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  if root not in sys.path:
    sys.path.insert(0, root)  # experiments import the configs/ package beside them
  spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for fn in ("get_config", "sweep"):
    if not hasattr(module, fn):
      raise ConfigError(f"{path} has no {fn}(); an experiment defines get_config(arg) and sweep(add, arg)")
  return module


def run_experiment(config, workdir: str) -> dict:
  """Trains the config's `train` section in `workdir` (or runs an `eval` section, writing its results to `workdir`
  when one is given, else to its `out_dir`); with a `retrieval` section ({lengths, num_samples, ...}) also measures
  retrieval accuracy at each length and writes workdir/retrieval.json. Returns the summary."""
  from lcjax.training.config import train_config
  from lcjax.training.loop import train
  from lcjax.training.retrieval import evaluate_retrieval

  if "saliency" in config:  # a saliency segmentation experiment (experiments/connnet.py)
    from lcjax.vision.train import saliency_train_config, train_saliency

    return train_saliency(saliency_train_config(config.saliency), workdir)
  if "rag" in config:  # the DRAG / IterDRAG scaling study (experiments/drag.py)
    from lcjax.rag.experiment import run_drag

    return run_drag(config.rag.to_dict(), workdir)
  if "attribution" in config:  # TracLLM on planted contexts (experiments/tracllm.py)
    from lcjax.attribution.experiment import run_tracllm

    return run_tracllm(config.attribution.to_dict(), workdir)
  if "rl" in config:  # an RL experiment (experiments/cispo.py)
    from lcjax.rl.experiment import run_rl

    return run_rl(config, workdir)
  if "longspec" in config:  # experiments/longspec.py: draft training + acceptance measurement
    from lcjax.training.longspec import run_longspec

    return run_longspec(config.longspec.to_dict(), workdir)
  if "train" not in config and "eval" in config:  # an evaluation experiment (experiments/niah.py, ...)
    from lcjax.eval.experiment import run_config

    if workdir:
      config.eval.out_dir = workdir
    return run_config(config)
  cfg = train_config(config.train)
  result = train(cfg, workdir)
  summary = {k: result[k] for k in ("step", "loss", "accuracy", "resumed_from")}
  if "retrieval" in config and result["step"] == cfg.steps:
    summary["retrieval"] = evaluate_retrieval(cfg, result["params"], config.retrieval.to_dict())
    with open(os.path.join(workdir, "retrieval.json"), "w") as f:
      json.dump(summary["retrieval"], f, indent=1)
  return summary
