"""Runs an experiment config: train (and, when the config asks, evaluate retrieval at several lengths).

  python -m lcjax.launch.main --config=experiments/passkey.py:runlocal --workdir=/tmp/run \
      --config.train.steps=200 --config.train.optimizer.lr=1e-3
  lcjax train --config experiments/passkey.py:runlocal --workdir /tmp/run      (the same flags, `parse_flags`)

`--config` is an experiment file with `get_config(arg)` (after the colon); `--config.a.b=v` overrides any field
(absl + `ml_collections.config_flags`); unknown keys fail when the typed configs are built.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from lcjax.errors import ConfigError
from lcjax.launch.experiments import run_experiment


def define_flags(flag_values: flags.FlagValues, argv: list[str] | None = None):
  """Defines --config (file:arg, with --config.a.b=v overrides) and --workdir on `flag_values`; the overrides are
  read from `argv` (default: sys.argv)."""
  config = config_flags.DEFINE_config_file("config", None, "experiment file and its argument: path.py:arg",
                                           flag_values=flag_values, lock_config=False, sys_argv=argv)
  workdir = flags.DEFINE_string("workdir", None, "directory for checkpoints, metrics and the exported model",
                                flag_values=flag_values)
  return config, workdir


def parse_flags(argv: list[str]):
  """(config, workdir) from launcher flags (argv[0] is the program name), on a private FlagValues so that several
  parses in one process do not collide.

  Raises:
    ConfigError: a missing --config or --workdir, or flags absl cannot parse (its message says which).
  """
  fv = flags.FlagValues()
  config, workdir = define_flags(fv, argv)
  try:
    fv(argv)
  except (flags.Error, ValueError, AttributeError) as e:  # config_flags: plain errors for a bad file or key
    raise ConfigError(f"bad launcher flags {argv[1:]}: {e}") from None
  if not config.value or not workdir.value:
    raise ConfigError(f"--config path.py:arg and --workdir DIR are both required, got {argv[1:]}")
  return config.value, workdir.value


def _define_process_flags():
  """The launcher's flags on the global FLAGS, defined only when it runs as a program: importing this module (for
  `parse_flags`, as `lcjax train` does) must not claim --config in a process where another launcher
  (`lcjax.launch.xm`) defines it."""
  global _CONFIG, _WORKDIR, _DEBUG
  _CONFIG, _WORKDIR = define_flags(flags.FLAGS)
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
  _define_process_flags()
  app.run(main)
