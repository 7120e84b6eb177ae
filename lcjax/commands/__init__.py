"""CLI subcommands; each module registers `(add_arguments, run)` in `COMMANDS` under its name."""

from typing import Callable

from lcjax.registry import Registry

COMMANDS: Registry[tuple[Callable, Callable]] = Registry("lcjax command")
