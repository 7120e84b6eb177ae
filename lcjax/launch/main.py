"""Runs an experiment config: train (and, when the config asks, evaluate retrieval at several lengths).

  python -m lcjax.launch.main --config=experiments/passkey.py:runlocal --workdir=/tmp/run \
      --config.train.steps=200 --config.train.optimizer.lr=1e-3

`--config` is an experiment file with `get_config(arg)` (after the colon); `--config.a.b=v` overrides any field
(absl + `ml_collections.config_flags`); unknown keys fail when the typed configs are built.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from lcjax.launch.experiments import run_experiment

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment file and its argument: path.py:arg",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints, metrics and the exported model")
_DEBUG = flags.DEFINE_bool("debug", False, "show the full traceback of an error")


def main(argv):
  del argv
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  from lcjax.boundary import run_guarded

  def go():
    print(json.dumps(run_experiment(_CONFIG.value, _WORKDIR.value), default=str))

  status = run_guarded("lcjax.launch.main", go, debug=_DEBUG.value)
  if status:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skip interpreter teardown, where orbax's async threads print "Event loop is closed"


if __name__ == "__main__":
  app.run(main)
