"""`lcjax analyze`: theoretical peak serving performance of a model at a context length on an accelerator
(Fu 2024): prefill time, decode latency, max concurrent users, context-switch cost."""

from __future__ import annotations

import dataclasses
import json

from lcjax.commands import COMMANDS


def _context(text: str) -> int:
  """'50000', '50K' (x1000) or '32Ki' (x1024)."""
  t = text.strip().lower()
  for suffix, mult in (("ki", 1024), ("k", 1000), ("mi", 1 << 20), ("m", 10**6)):
    if t.endswith(suffix):
      return int(float(t[:-len(suffix)]) * mult)
  return int(t)


def _add(p) -> None:
  p.add_argument("what", nargs="?", default="serving", choices=("serving", "rag"),
                 help="serving (default): peak serving performance; rag: the RAG computation allocation model")
  p.add_argument("--model", default="yi-34b",
                 help="analysis preset (yi-34b, llama3-8b, llama3-70b), a bundled model name or a .gguf/HF path")
  p.add_argument("--hardware", default="a100", help="a100, h100, h200, tpu-v5e, tpu-v5p or cpu (measured here)")
  p.add_argument("--context", type=_context, action="append",
                 help="context length(s): 50000, 50K (=50,000), 32Ki (=32,768); repeatable (default 4K and 50K)")
  p.add_argument("--output-tokens", type=int, default=250, help="decode length for the decode total")
  p.add_argument("--devices", type=int, default=1, help="tensor-parallel devices (HBM and FLOP/s add up)")
  p.add_argument("--json", action="store_true", help="print JSON instead of a table")
  from lcjax.commands.analyze_rag import add_rag_arguments

  add_rag_arguments(p)


def _model_spec(name: str):
  from lcjax.analysis.deployment import MODELS, ModelSpec

  if name in MODELS:
    return MODELS.get(name)
  from lcjax.checkpoint.gguf import config_from_gguf, read_gguf
  from lcjax.errors import UnknownNameError
  from lcjax.models.bundled import BUNDLED, bundled_path

  if name in BUNDLED or name.endswith(".gguf"):
    path = bundled_path(name) if name in BUNDLED else name
    return ModelSpec.from_config(name, config_from_gguf(read_gguf(path)))
  if "/" in name:
    from lcjax.checkpoint.safetensors_io import load_hf

    return ModelSpec.from_config(name, load_hf(name)[0])
  raise UnknownNameError(f"unknown analysis model {name!r}; known: {', '.join(MODELS.names())}, "
                         f"{', '.join(BUNDLED)}, or a .gguf file / HF directory")


def _run(args) -> int:
  from rich.console import Console
  from rich.table import Table

  from lcjax.analysis import analyze, hardware

  if args.what == "rag":
    from lcjax.commands.analyze_rag import run_rag

    return run_rag(args)

  model = _model_spec(args.model)
  hw = hardware(args.hardware, devices=args.devices)
  reports = [analyze(model, hw, c, args.output_tokens) for c in (args.context or [4000, 50000])]
  if args.json:
    print(json.dumps([dataclasses.asdict(r) for r in reports], indent=2))
    return 0
  table = Table(title=f"{model.name} on {hw.devices} x {hw.name}: theoretical peak (Fu 2024)")
  table.add_column("metric")
  for r in reports:
    table.add_column(f"context {r.context:,}", justify="right")
  for i, (metric, _) in enumerate(reports[0].rows()):
    table.add_row(metric, *[r.rows()[i][1] for r in reports])
  Console(width=max(100, 40 + 28 * len(reports))).print(table)
  return 0


COMMANDS.register("analyze", (_add, _run),
                  doc="theoretical peak prefill/decode/concurrency/context-switch of long-context serving")
