"""XManager launcher: one work unit per point of an experiment's `sweep(add, arg)`, on the local executor.

  python -m lcjax.launch.xm --config=experiments/passkey.py:runlocal --workdir=/tmp/sweep [--dry_run]

A sweep point is a nested dict of config overrides (`add(train={"optimizer": {"lr": 1e-3}})` becomes
`--config.train.optimizer.lr=0.001`); the special key `arg` is appended to the experiment argument
(`add(arg="variant=pi")` -> `--config=experiments/x.py:runlocal,variant=pi`). `--dry_run` prints the jobs and needs
no XManager; without it XManager (`pip install lcjax[launch]`) must be installed. The executable is this checkout's
launcher, `<python> -m lcjax.launch.main`, packaged as an `xm.binary` for `xm_local.Local`: it runs as a local
process (no container, no Docker), each work unit with its point's flags.
"""

from __future__ import annotations

import json
import os
import sys

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


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _xmanager():
  try:
    from xmanager import xm, xm_local
  except ImportError:
    raise ImplUnavailableError("XManager is not installed (pip install lcjax[launch]); use --dry_run to print the "
                               "jobs, or run each with python -m lcjax.launch.main") from None
  return xm, xm_local


def launcher_packageable(python: str = sys.executable):
  """The `xm.Packageable` of the launcher: `python -m lcjax.launch.main` as a prebuilt local binary, with this
  checkout first on PYTHONPATH (the work units import the same lcjax and experiments/ as the launching process)."""
  xm, xm_local = _xmanager()
  path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
  return xm.binary(executor_spec=xm_local.Local.Spec(), path=python, args=["-m", "lcjax.launch.main"],
                   env_vars={"PYTHONPATH": path})


def work_unit_jobs(jobs: list[dict], executable) -> list:
  """One `xm.Job` per sweep point on the local executor: the packaged launcher with the point's flags."""
  xm, xm_local = _xmanager()
  return [xm.Job(executable=executable, executor=xm_local.Local(), args=list(job["args"]), name=job["name"])
          for job in jobs]


def launch(jobs: list[dict], title: str) -> int:
  """Launches the jobs as XManager work units on the local executor, waits for them and returns the experiment id
  (XManager's local database records it; each unit's summary is its workdir's output)."""
  _, xm_local = _xmanager()
  with xm_local.create_experiment(experiment_title=title) as experiment:
    [executable] = experiment.package([launcher_packageable()])
    for job in work_unit_jobs(jobs, executable):
      experiment.add(job)  # one work unit per sweep point
  return experiment.experiment_id


def main(argv):
  del argv
  jobs = build_jobs(_CONFIG.value, _WORKDIR.value)
  if _DRY_RUN.value:
    for job in jobs:
      print(" ".join(["python -m lcjax.launch.main", *job["args"]]))
    return
  print(f"XManager experiment {launch(jobs, _CONFIG.value)}: {len(jobs)} work units finished")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
