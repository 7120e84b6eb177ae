"""`lcjax eval`: run tasks of the seed benchmarks on a model x KV method x length x depth sweep.

  lcjax eval --task niah --model smollm2 --kv dense --lengths 1k,2k,4k --depths 0:100:10
  lcjax eval --list                      # every task with its benchmark, metric and taxonomy tags
"""

from __future__ import annotations

import argparse
import json
import os

from lcjax.commands import COMMANDS
from lcjax.errors import ConfigError

MODEL_ALIASES = {"smollm2": "smollm2-135m"}


def parse_depths(text: str) -> list[float]:
  """ "0:100:10" -> 0, 10, ..., 100 (inclusive); "0,50,100" -> the list."""
  if ":" in text:
    try:
      start, stop, step = (float(x) for x in text.split(":"))
    except ValueError:
      raise ConfigError(f"bad depths {text!r}; expected start:stop:step like 0:100:10 or a list like 0,50") from None
    if step <= 0:
      raise ConfigError(f"depth step must be positive, got {text!r}")
    out, d = [], start
    while d <= stop + 1e-9:
      out.append(round(d, 6))
      d += step
    return out
  try:
    return [float(x) for x in text.split(",") if x]
  except ValueError:
    raise ConfigError(f"bad depths {text!r}; expected start:stop:step like 0:100:10 or a list like 0,50") from None


def _add(p: argparse.ArgumentParser) -> None:
  p.add_argument("--task", default="niah", help="comma-separated task names (see --list)")
  p.add_argument("--model", default="smollm2", help="bundled name (smollm2), .gguf file or HF directory")
  p.add_argument("--kv", default="dense", help="comma-separated KV methods (registry of KV backends)")
  p.add_argument("--kv-budget", default=None, help="KV method budget: all, a fraction (0.25) or tokens (512)")
  p.add_argument("--lengths", default="1k", help="comma-separated lengths in tokens (512, 4k, 1m)")
  p.add_argument("--depths", default="50", help="needle depths in percent: start:stop:step or a list")
  p.add_argument("--samples", type=int, default=1, help="samples per cell (generators) / examples (loaders, 0 = all)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="results/eval", help="results folder (JSONL per task, summary, plots)")
  p.add_argument("--data-dir", default=os.environ.get("LCJAX_EVAL_DATA"), help="folder of the official data files")
  p.add_argument("--max-new-tokens", type=int, default=None, help="cap on the tasks' generation budgets")
  p.add_argument("--option", action="append", default=[], help="task option key=value (repeatable)")
  p.add_argument("--list", action="store_true", help="list the registered tasks and exit")
  p.add_argument("--strict", action="store_true", help="stop at the first record that fails instead of counting it")
  p.add_argument("--no-plots", action="store_true")
  p.add_argument("--taxonomy", default=None, help="write the diffusion x scope plot of every task to this PNG and exit")
  p.add_argument("--rag", action="append", default=None,
                 help="rag.<corpus> tasks: strategy drag:k=8,m=2 | iterdrag:k=4,m=1,n=3 | closed (repeatable)")
  p.add_argument("--retriever", default="bm25", help="rag.<corpus> tasks: bm25 or dense")


def _kv_budget(options: dict, budget: str | None) -> dict:
  """Adds --kv-budget to the KV backends' options ("all", a fraction or a token count)."""
  if budget is None:
    return options
  try:
    value = budget if budget == "all" else (float(budget) if "." in budget else int(budget))
  except ValueError:
    raise ConfigError(f"bad --kv-budget {budget!r}; accepted: all, a fraction (0.25) or a token count (512)") \
        from None
  if value != "all" and not (0 < value < float("inf")):
    raise ConfigError(f"--kv-budget must be positive, got {budget!r}")
  return {**options, "kv_options": {**options.get("kv_options", {}), "budget": value}}


def _options(pairs) -> dict:
  out = {}
  for pair in pairs:
    if "=" not in pair:
      raise ConfigError(f"bad --option {pair!r}; expected key=value")
    key, value = pair.split("=", 1)
    try:
      out[key] = json.loads(value)
    except ValueError:
      out[key] = value
  return out


def _list() -> int:
  from rich.console import Console
  from rich.table import Table

  from lcjax.eval import TASKS

  table = Table(title="lcjax eval tasks")
  for col in ("task", "benchmark", "metric", "kind", "diffusion", "scope"):
    table.add_column(col)
  for t in (e.value for e in TASKS.entries()):
    table.add_row(t.name, t.benchmark, t.metric, "generator" if t.synthetic else "loader", f"{t.diffusion:.2f}",
                  f"{t.scope:.2f}")
  Console(width=160).print(table)
  return 0


def report_outcomes(console, result: dict, out_dir: str) -> None:
  """Prints skipped lines and the scored / failed / skipped counts; DataError when nothing could be scored."""
  from lcjax.errors import DataError

  for problem in result["problems"]:
    console.print(f"skipped: {problem[2]}", markup=False)
  counts = result["counts"]
  console.print(f"records: {counts['scored']} scored, {counts['failed']} failed, {counts['skipped']} skipped "
                f"(details in {os.path.join(out_dir, 'summary.json')})", markup=False)
  for kind, reason in counts["reasons"].items():
    console.print(f"failed ({kind}), e.g.: {reason}", markup=False)
  if not counts["scored"]:
    raise DataError(f"no example could be scored ({counts['failed']} failed, {counts['skipped']} skipped)"
                    + (f"; first failure: {next(iter(counts['reasons'].values()))}" if counts["reasons"] else ""))


def _run(args) -> int:
  from rich.console import Console
  from rich.table import Table

  from lcjax.eval import plots
  from lcjax.eval.data.haystack import parse_length
  from lcjax.eval.runner import EvalConfig, run

  if args.list:
    return _list()
  if args.taxonomy:
    from lcjax.eval import TASKS

    print(plots.plot_taxonomy([e.value for e in TASKS.entries()], args.taxonomy))
    return 0
  if any(t.startswith("rag.") for t in args.task.split(",")):
    from lcjax.commands.eval_rag import run_rag_command

    return run_rag_command(args, MODEL_ALIASES.get(args.model, args.model))
  cfg = EvalConfig(tasks=[t for t in args.task.split(",") if t], model=MODEL_ALIASES.get(args.model, args.model),
                   kv=[k for k in args.kv.split(",") if k], lengths=[parse_length(x) for x in args.lengths.split(",")],
                   depths=parse_depths(args.depths), num_samples=args.samples, seed=args.seed, out_dir=args.out,
                   data_dir=args.data_dir, options=_kv_budget(_options(args.option), args.kv_budget),
                   max_new_tokens=args.max_new_tokens, strict=args.strict)
  result = run(cfg)
  console = Console()
  report_outcomes(console, result, cfg.out_dir)
  table = Table(title=f"{cfg.model}: official scores")
  for col in ("task", "kv", "length", "depth", "score", "n"):
    table.add_column(col)
  for r in result["summary"]:
    table.add_row(r["task"], r["kv"], str(r["length"]), "-" if r["depth"] is None else f"{r['depth']:g}",
                  f"{r['score']:.2f}", str(r["n"]))
  console.print(table)
  if not args.no_plots:
    for name in cfg.tasks:
      console.print(f"plot: {plots.score_vs_length(result['summary'], name, f'{cfg.out_dir}/{name}/score_vs_length.png')}")
      for kv in cfg.kv:
        if any(r["task"] == name and r["depth"] is not None for r in result["summary"]):
          path = plots.depth_length_heatmap(result["summary"], name, kv, f"{cfg.out_dir}/{name}/heatmap_{kv}.png")
          console.print(f"plot: {path}")
  return 0


COMMANDS.register("eval", (_add, _run), doc="evaluate a model on the seed benchmarks (official metrics)")
