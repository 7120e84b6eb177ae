"""`lcjax bench NAME [script flags]`: runs benchmarks/NAME.py of the repository checkout (as `python
benchmarks/NAME.py ...` would, with the repository on the path); `lcjax bench --list` names them with their first
docstring line. Benchmarks live in the checkout, not in the installed package; run from the repository root or set
LCJAX_REPO."""

from __future__ import annotations

import argparse
import ast
import os
import runpy
import sys

from lcjax.commands import COMMANDS
from lcjax.errors import ConfigError, UnknownNameError


def benchmarks_dir() -> str:
  """The benchmarks/ folder: $LCJAX_REPO/benchmarks, ./benchmarks, or the one beside the lcjax package."""
  import lcjax

  for root in (os.environ.get("LCJAX_REPO"), os.getcwd(), os.path.dirname(os.path.dirname(lcjax.__file__))):
    if root and os.path.isfile(os.path.join(root, "benchmarks", "results.py")):
      return os.path.join(root, "benchmarks")
  raise ConfigError("no benchmarks/ folder found: run `lcjax bench` from the lcjax repository or set LCJAX_REPO")


def benchmark_scripts(folder: str) -> dict[str, str]:
  """{name: first docstring line} of the runnable scripts (those with a __main__ block) in `folder`."""
  out = {}
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if not name.endswith(".py") or name.startswith("_"):
      continue
    with open(path, encoding="utf-8") as f:
      source = f.read()
    if '__name__ == "__main__"' in source:
      out[name[:-3]] = (ast.get_docstring(ast.parse(source)) or "").split("\n")[0]
  return out


def _add(p: argparse.ArgumentParser) -> None:
  p.add_argument("name", nargs="?", help="benchmark script name (benchmarks/NAME.py); its own flags follow")
  p.add_argument("--list", action="store_true", help="list the benchmark scripts and exit")
  p.set_defaults(_passthrough=True)


def _run(args) -> int:
  folder = benchmarks_dir()
  scripts = benchmark_scripts(folder)
  if args.list or not args.name:
    for name, doc in scripts.items():
      print(f"{name:24s} {doc}")
    return 0
  if args.name not in scripts:
    raise UnknownNameError(f"unknown benchmark {args.name!r}; available: {', '.join(scripts)}")
  root = os.path.dirname(folder)
  if root not in sys.path:
    sys.path.insert(0, root)  # scripts import benchmarks.results and configs
  argv, sys.argv = sys.argv, [os.path.join(folder, f"{args.name}.py"), *args.extra]
  try:
    runpy.run_path(sys.argv[0], run_name="__main__")
  except SystemExit as e:  # argparse --help / errors inside the script
    return int(e.code or 0) if not isinstance(e.code, str) else 1
  finally:
    sys.argv = argv
  return 0


COMMANDS.register("bench", (_add, _run), doc="run a benchmark script of benchmarks/ (`lcjax bench --list`)")
