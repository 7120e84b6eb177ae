"""Runs an experiment config: train (and, when the config asks, evaluate retrieval at several lengths).

  python -m lcjax.launch.main --config=experiments/passkey.py:runlocal --workdir=/tmp/run \
      --config.train.steps=200 --config.train.optimizer.lr=1e-3

`--config` is an experiment file with `get_config(arg)` (after the colon); `--config.a.b=v` overrides any field
(absl + `ml_collections.config_flags`); unknown keys fail when the typed configs are built.
"""

from __future__ import annotations

import json
import os

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment file and its argument: path.py:arg",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints, metrics and the exported model")


def run_experiment(config, workdir: str) -> dict:
  """Trains the config's `train` section in `workdir` (or runs an `eval` section); with a `retrieval` section ({lengths, num_samples, ...}),
  also measures retrieval accuracy at each length and writes workdir/retrieval.json. Returns the summary."""
  from lcjax.training.config import train_config
  from lcjax.training.loop import train

  if "train" not in config and "eval" in config:  # an evaluation experiment (experiments/niah.py, ...)
    from lcjax.eval.experiment import run_config

    return run_config(config)
  cfg = train_config(config.train)
  result = train(cfg, workdir)
  summary = {k: result[k] for k in ("step", "loss", "accuracy", "resumed_from")}
  if "retrieval" in config and result["step"] == cfg.steps:
    summary["retrieval"] = evaluate_retrieval(cfg, result["params"], config.retrieval.to_dict())
    with open(os.path.join(workdir, "retrieval.json"), "w") as f:
      json.dump(summary["retrieval"], f, indent=1)
  return summary


def evaluate_retrieval(cfg, params, spec: dict) -> dict:
  """{length: accuracy} on kv_retrieval at spec["lengths"], with the RoPE of spec["rope"] ("train": the trained
  RoPE; "linear": position interpolation by length / trained length) and spec's sample options."""
  from lcjax.recipes.e2llm import inference_rope
  from lcjax.training.retrieval import retrieval_accuracy, retrieval_samples

  options = dict(spec.get("options", {}))
  out = {}
  for length in spec["lengths"]:
    rope = cfg.model.rope
    if spec.get("rope", "train") == "linear":
      rope = inference_rope(rope, cfg.data.seq_len, length)
    model = cfg.model.replace(rope=rope, max_seq_len=max(length, cfg.model.max_seq_len))
    samples = retrieval_samples(length, cfg.model.vocab_size, spec.get("num_samples", 64), **options)
    out[str(length)] = retrieval_accuracy(model, params, samples)
  return out


def main(argv):
  del argv
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  print(json.dumps(run_experiment(_CONFIG.value, _WORKDIR.value)))


if __name__ == "__main__":
  app.run(main)
