"""The `lcjax` console script. Every module in `lcjax/commands/` registers its subcommand in `COMMANDS`.

  lcjax generate "prompt"    generate with the bundled SmolLM2-135M-Instruct (or --model PATH)
  lcjax info                 model, devices and available implementations
  lcjax demo                 the showcase: a long document question answered on the bundled model
  lcjax attribute --context F --question Q   which context texts caused the answer (TracLLM)
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
    p.set_defaults(_run=run)
  return parser


def main(argv: list[str] | None = None) -> int:
  """Entry point of the console script."""
  from lcjax.errors import LcjaxError

  args = build_parser().parse_args(argv)
  try:
    return int(args._run(args) or 0)
  except LcjaxError as e:
    print(f"lcjax {args.command}: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
