"""Glue between experiment config files (`experiments/<name>.py: get_config(arg)`, `sweep(add, arg)`) and the
evaluation runner.

  arg = "runlocal,lengths=1k+4k,kv=dense"     ->  {"runlocal": True, "lengths": ["1k", "4k"], "kv": ["dense"]}
  cfg = experiments.niah.get_config(arg); result = run_config(cfg)
"""

from __future__ import annotations

import ml_collections

from lcjax.config import from_dict
from lcjax.errors import ConfigError

LIST_KEYS = ("lengths", "depths", "kv", "tasks")


def parse_arg(arg: str | None) -> dict:
  """Parses "flag,key=value,key=a+b" (lists use "+") into a dict; list keys always give lists."""
  out: dict = {}
  for item in (arg or "").split(","):
    item = item.strip()
    if not item:
      continue
    if "=" not in item:
      out[item] = True
      continue
    key, value = item.split("=", 1)
    out[key] = value.split("+") if key in LIST_KEYS or "+" in value else value
  return out


def eval_config(tasks, *, lengths, depths=(50.0,), kv=("dense",), model="smollm2-135m", num_samples=1,
                out_dir="results/eval", data_dir=None, options=None, max_new_tokens=None) -> ml_collections.ConfigDict:
  """An `eval` ConfigDict section (the fields of `runner.EvalConfig`)."""
  from lcjax.eval.data.haystack import parse_length

  return ml_collections.ConfigDict(dict(
      tasks=list(tasks), model=model, kv=list(kv), lengths=[parse_length(x) for x in lengths],
      depths=[float(d) for d in depths], num_samples=int(num_samples), seed=0, out_dir=out_dir, data_dir=data_dir,
      options=dict(options or {}), max_new_tokens=max_new_tokens))


def apply_overrides(section: ml_collections.ConfigDict, args: dict) -> ml_collections.ConfigDict:
  """Applies the parsed arg's known keys (lengths, depths, kv, tasks, samples, model, data_dir) to `section`."""
  from lcjax.eval.data.haystack import parse_length

  for key, value in args.items():
    if key == "runlocal":
      continue
    if key == "lengths":
      section.lengths = [parse_length(x) for x in value]
    elif key == "depths":
      section.depths = [float(x) for x in value]
    elif key in ("kv", "tasks"):
      setattr(section, key, list(value))
    elif key == "samples":
      section.num_samples = int(value)
    elif key in ("model", "data_dir", "out_dir"):
      setattr(section, key, value)
    else:
      raise ConfigError(f"unknown experiment argument {key!r}; accepted: runlocal, lengths, depths, kv, tasks, "
                        f"samples, model, data_dir, out_dir")
  return section


def run_config(config: ml_collections.ConfigDict, pretrained=None, progress: bool = True) -> dict:
  """Runs the `eval` section of an experiment config (unknown keys fail)."""
  from lcjax.eval.runner import EvalConfig, run

  return run(from_dict(EvalConfig, config.eval, "eval."), pretrained=pretrained, progress=progress)
