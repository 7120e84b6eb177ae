"""XManager launcher: one work unit per point of an experiment's `sweep(add, arg)`, on the local executor.

  python -m lcjax.launch.xm --config=experiments/passkey.py:runlocal --workdir=/tmp/sweep --dry_run

A sweep point is a nested dict of config overrides (`add(train={"optimizer": {"lr": 1e-3}})` becomes
`--config.train.optimizer.lr=0.001`); the special key `arg` is appended to the experiment argument
(`add(arg="variant=pi")` -> `--config=experiments/x.py:runlocal,variant=pi`). `--dry_run` prints the jobs and needs
no XManager; without it XManager (`pip install xmanager`) must be installed.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from lcjax.errors import ConfigError, ImplUnavailableError
from lcjax.launch.experiments import load_experiment

_CONFIG = flags.DEFINE_string("config", None, "experiment file and argument: path.py:arg")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/lcjax_xm", "root directory; work unit i writes to <workdir>/<i>")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "print the jobs instead of launching them")


def _flatten(prefix: str, value) -> list[tuple[str, object]]:
  if isinstance(value, dict):
    return [kv for k, v in value.items() for kv in _flatten(f"{prefix}.{k}", v)]
  return [(prefix, value)]


def _flag_value(v) -> str:
  if isinstance(v, (list, tuple, dict)):
    return json.dumps(list(v) if isinstance(v, tuple) else v)
  return str(v)


def build_jobs(config: str, workdir: str) -> list[dict]:
  """The work units of `config` ("path.py:arg"): [{"name", "args": [flag strings], "workdir"}], one per point.

  Every point's config is built (get_config with its arg, overrides applied) so a bad point fails here.
  """
  path, _, arg = config.partition(":")
  module = load_experiment(path)
  points: list[dict] = []
  module.sweep(lambda **kw: points.append(kw), arg or None)
  jobs = []
  for i, point in enumerate(points or [{}]):
    point = dict(point)
    point_arg = ",".join(a for a in (arg, point.pop("arg", "")) if a)
    cfg = module.get_config(point_arg or None)
    overrides = _flatten("config", point)
    for key, _ in overrides:  # every section a point overrides must exist (leaves of free-form dicts may be new)
      node = cfg
      for part in key.split(".")[1:-1]:
        if part not in node:
          raise ConfigError(f"sweep point {i} of {path} overrides {key}, but the config has no {part!r}")
        node = node[part]
    unit_dir = os.path.join(workdir, str(i))
    args = [f"--config={path}:{point_arg}" if point_arg else f"--config={path}", f"--workdir={unit_dir}"]
    args += [f"--{k}={_flag_value(v)}" for k, v in overrides]
    jobs.append({"name": f"{cfg.get('name', module.__name__)}_{i}", "args": args, "workdir": unit_dir})
  return jobs


def launch(jobs: list[dict], title: str) -> None:
  """Launches the jobs as XManager work units on the local executor."""
  try:
    from xmanager import xm, xm_local
  except ImportError:
    raise ImplUnavailableError("XManager is not installed (pip install xmanager); use --dry_run to print the "
                               "jobs, or run each with python -m lcjax.launch.main") from None
  with xm_local.create_experiment(experiment_title=title) as experiment:
    [executable] = experiment.package([xm.python_container(
        executor_spec=xm_local.Local.Spec(), path=".", entrypoint=xm.ModuleName("lcjax.launch.main"))])
    for job in jobs:
      experiment.add(xm.Job(executable=executable, executor=xm_local.Local(), args=job["args"]))


def main(argv):
  del argv
  jobs = build_jobs(_CONFIG.value, _WORKDIR.value)
  if _DRY_RUN.value:
    for job in jobs:
      print(" ".join(["python -m lcjax.launch.main", *job["args"]]))
    return
  launch(jobs, _CONFIG.value)


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
