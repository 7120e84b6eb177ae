"""The `lcjax` console script. Every module in `lcjax/commands/` registers its subcommand in `COMMANDS`.

  lcjax generate "prompt"    generate with the bundled SmolLM2-135M-Instruct (or --model PATH)
  lcjax info                 model, devices and available implementations
  lcjax demo                 the showcase: a long document question answered on the bundled model
  lcjax train / run          an experiment config with the launcher's flags (--config x.py:arg --workdir DIR)
  lcjax bench NAME           a benchmark script of benchmarks/ (`lcjax bench --list`)
  lcjax segment IMG --model DIR   the saliency map of an image (ConnNet, lcjax.vision) as a PNG
  lcjax attribute --context F --question Q   which context texts caused the answer (TracLLM)
  `lcjax --help` lists every command.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import lcjax.commands
from lcjax.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
  """The argument parser with every registered subcommand."""
  for module in pkgutil.iter_modules(lcjax.commands.__path__):
    importlib.import_module(f"lcjax.commands.{module.name}")
  parser = argparse.ArgumentParser(prog="lcjax", description="lcjax: long-context language models in JAX")
  sub = parser.add_subparsers(dest="command", required=True)
  for entry in COMMANDS.entries():
    add_arguments, run = entry.value
    p = sub.add_parser(entry.name, help=entry.doc, description=entry.doc)
    add_arguments(p)
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    p.set_defaults(_run=run)
  return parser


def main(argv: list[str] | None = None) -> int:
  """Entry point of the console script."""
  from lcjax.boundary import run_guarded

  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  if extra and not getattr(args, "_passthrough", False):
    parser.error(f"unrecognized arguments: {' '.join(extra)}")
  args.extra = extra  # commands that forward flags (train, run) read them here
  return run_guarded(f"lcjax {args.command}", lambda: args._run(args), debug=args.debug)


if __name__ == "__main__":
  sys.exit(main())
