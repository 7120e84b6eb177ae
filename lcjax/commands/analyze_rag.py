"""`lcjax analyze rag --budget 32Ki`: the predicted-optimal RAG configuration (k documents, m shots, n iterations)
for a budget of effective context tokens under the computation allocation model (Yue et al. 2025).

  lcjax analyze rag --budget 32Ki --budget 128Ki --info 0.5,0.2
"""

from __future__ import annotations

import json


def add_rag_arguments(p) -> None:
  """The `rag` options of `lcjax analyze` (budgets, informativeness, token sizes, a fitted model file)."""
  from lcjax.commands.analyze import _context

  g = p.add_argument_group("rag (lcjax analyze rag)")
  g.add_argument("--budget", type=_context, action="append",
                 help="effective-context budget(s) L_max: 32Ki, 128K, 1Mi; repeatable (default 16Ki..1Mi)")
  g.add_argument("--info", default="0,0", help="informativeness i_doc,i_shot of the task (default 0,0)")
  g.add_argument("--doc-tokens", type=int, default=128, help="tokens per retrieved document")
  g.add_argument("--question-tokens", type=int, default=32)
  g.add_argument("--answer-tokens", type=int, default=16)
  g.add_argument("--instruction-tokens", type=int, default=64)
  g.add_argument("--fit", default=None, help="JSON with fitted a, b, c (from experiments/drag.py) instead of the "
                                              "paper's constants")


def _info(text: str):
  from lcjax.errors import ConfigError

  try:
    parts = [float(x) for x in text.split(",")]
  except ValueError:
    parts = []
  if len(parts) != 2:
    raise ConfigError(f"bad --info {text!r}; expected i_doc,i_shot like 0.5,0.2")
  return (parts[0], parts[1], 0.0)


def run_rag(args) -> int:
  """Prints the predicted optimum per budget (a table, or JSON with --json)."""
  from rich.console import Console
  from rich.table import Table

  from lcjax.analysis import rag_allocation as ra

  model = ra.PAPER
  if args.fit:
    with open(args.fit) as f:
      coef = json.load(f)
    model = ra.AllocationModel(a=tuple(coef["a"]), b=tuple(coef["b"]), c=float(coef["c"]))
  info = _info(args.info)
  theta = ra.default_grid()
  lengths = ra.effective_length(theta, args.doc_tokens, args.question_tokens, args.answer_tokens,
                                args.instruction_tokens)
  budgets = args.budget or [16 << 10, 32 << 10, 128 << 10, 1 << 20]
  rows = ra.optimum_by_budget(model, theta, lengths, info, budgets)
  if args.json:
    print(json.dumps(rows, indent=1))
    return 0
  table = Table(title=f"RAG computation allocation ({'fitted' if args.fit else 'paper constants'}, i={info[:2]})")
  for col in ("budget", "k docs", "m shots", "n iters", "l(theta)", "predicted P"):
    table.add_column(col, justify="right")
  for r in rows:
    table.add_row(f"{r['budget']:,}", str(r["k"]), str(r["m"]), str(r["n"]), f"{r['length']:,.0f}",
                  f"{r['p_hat']:.4f}")
  Console(width=100).print(table)
  return 0
