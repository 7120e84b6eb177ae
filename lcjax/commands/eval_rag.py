"""`lcjax eval --task rag.<corpus> --rag drag:k=8,m=2 --rag iterdrag:n=3`: the RAG part of `lcjax eval`."""

from __future__ import annotations

import os


def run_rag_command(args, model: str) -> int:
  """Runs the rag.<corpus> tasks of `args.task` with every `--rag` strategy; prints the table, writes the plot."""
  from rich.console import Console
  from rich.table import Table

  from lcjax.errors import ConfigError
  from lcjax.eval.rag import RagEvalConfig, plot_performance_vs_length, run_rag

  tasks = [t for t in args.task.split(",") if t]
  if any(not t.startswith("rag.") for t in tasks):
    raise ConfigError(f"run rag.<corpus> tasks separately from the others; got {tasks}")
  cfg = RagEvalConfig(tasks=tasks, strategies=args.rag or ["drag"], model=model, out_dir=args.out,
                      num_questions=args.samples, seed=args.seed, data_dir=args.data_dir, retriever=args.retriever)
  rows = run_rag(cfg)
  table = Table(title=f"{model}: RAG")
  for col in ("task", "strategy", "acc", "EM", "F1", "eff. length", "calls", "n"):
    table.add_column(col)
  for r in rows:
    table.add_row(r["task"], r["strategy"], f"{r['acc']:.2f}", f"{r['em']:.2f}", f"{r['f1']:.2f}",
                  f"{r['effective_length']:.0f}", f"{r['calls']:.2f}", str(r["questions"]))
  console = Console(width=160)
  console.print(table)
  if not args.no_plots:
    for task in tasks:
      path = os.path.join(args.out, task, "performance_vs_length.png")
      console.print(f"plot: {plot_performance_vs_length(rows, task, path)}")
  return 0
