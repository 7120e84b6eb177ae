"""`lcjax info`: what this installation can run."""

from __future__ import annotations

import jax

from lcjax.commands import COMMANDS


def _add(p) -> None:
  p.add_argument("--model", default="smollm2-135m", help="model to describe (bundled name, .gguf or HF dir)")


def _run(args) -> int:
  from rich.console import Console
  from rich.table import Table

  from lcjax.config import to_dict
  from lcjax.inference.generate import context_limit
  from lcjax.models.bundled import bundled_path
  from lcjax.ops.attention import ATTENTION_IMPLS, AUTO_TABLE, current_platform, runs_here
  from lcjax.ops.decode import DECODE_IMPLS
  from lcjax.ops.linear_attention import LINEAR_ATTENTION_IMPLS

  console = Console()
  console.print(f"[bold]lcjax[/bold] on jax {jax.__version__}, platform {current_platform()}, "
                f"{jax.device_count()} device(s): {', '.join(sorted({d.device_kind for d in jax.devices()}))}")
  for registry in (ATTENTION_IMPLS, DECODE_IMPLS, LINEAR_ATTENTION_IMPLS):
    table = Table(title=registry.kind + "s")
    for col in ("name", "platforms", "runs here", "about"):
      table.add_column(col)
    for e in registry.entries():
      table.add_row(e.name, ", ".join(e.platforms or ("any",)),
                    "yes" if runs_here(e, current_platform(), {}) else "no", e.doc)
    console.print(table)
  console.print(f"auto order on {current_platform()}: {', '.join(AUTO_TABLE.get(current_platform(), ()))}")
  from lcjax.checkpoint import gguf

  path = bundled_path(args.model) if not args.model.endswith(".gguf") and "/" not in args.model else args.model
  if path.endswith(".gguf"):
    cfg = gguf.config_from_gguf(gguf.read_gguf(path))
    console.print(f"model {args.model}: {path}")
    console.print({k: v for k, v in to_dict(cfg).items()})
    console.print(f"context limit: {context_limit(cfg)} tokens")
  return 0


COMMANDS.register("info", (_add, _run), doc="show the model, devices and available implementations")
