"""`lcjax train` and `lcjax run`: an experiment config through the launcher's flags (lcjax.launch.main).

  lcjax train --config experiments/passkey.py:runlocal --workdir /tmp/run [--config.train.steps=20]
  lcjax run --config experiments/niah.py:runlocal --workdir /tmp/niah          (evaluation experiments)

`train` shows a progress bar and resumes from the newest checkpoint in the workdir; both print the run's summary as
JSON on the last line.
"""

from __future__ import annotations

import argparse
import json

from lcjax.commands import COMMANDS
from lcjax.errors import ConfigError

USAGE = "--config experiments/x.py:arg [--config.a.b=v ...] --workdir DIR"


def _add(p: argparse.ArgumentParser) -> None:
  p.usage = f"lcjax {{train,run}} {USAGE}"
  p.set_defaults(_passthrough=True)  # the launcher's absl flags are parsed by lcjax.launch.main.parse_flags


def _parse(args):
  from lcjax.launch.main import parse_flags

  return parse_flags([f"lcjax {args.command}", *args.extra])


def _print(summary: dict) -> None:
  print(json.dumps({k: v for k, v in summary.items() if k != "params"}, default=str))


def _train(args) -> int:
  from lcjax.launch.experiments import run_experiment

  config, workdir = _parse(args)
  if "train" not in config:
    raise ConfigError(f"{config.get('name', 'this config')} has no train section; use `lcjax run` for evaluation "
                      "experiments")
  if "progress" in config.train and not any(a.startswith("--config.train.progress") for a in args.extra):
    config.train.progress = True
  _print(run_experiment(config, workdir))
  return 0


def _run(args) -> int:
  from lcjax.launch.experiments import run_experiment

  config, workdir = _parse(args)
  _print(run_experiment(config, workdir))
  return 0


COMMANDS.register("train", (_add, _train),
                  doc="train an experiment config (launcher flags; progress bar; resumes)")
COMMANDS.register("run", (_add, _run), doc="run any experiment config (evaluation sweeps, training)")
