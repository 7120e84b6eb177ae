"""The DRAG / IterDRAG scaling study (experiments/drag.py): a grid over (k, m) with DRAG and over n with IterDRAG,
evaluated through the harness (`lcjax.eval.rag`), then the computation allocation model fitted on the measured
accuracies and its predicted-optimal configuration compared with the observed best per budget.

Informativeness (the paper's i): i_doc = P(k=1, m=0) - P(0, 0), i_shot = P(0, 1) - P(0, 0), measured on the task.
"""

from __future__ import annotations

import json
import os

import numpy as np


def strategies(ks, ms, iter_ns, iter_k: int, iter_m: int) -> list[str]:
  """DRAG for every (k, m) of the grid, IterDRAG for every n (with iter_k documents per round, iter_m shots)."""
  out = [f"drag:k={k},m={m}" for k in ks for m in ms]
  return out + [f"iterdrag:k={iter_k},m={iter_m},n={n}" for n in iter_ns]


def _acc(rows, k, m):
  hit = [r["acc"] / 100 for r in rows if r["kind"] == "drag" and r["k"] == k and r["m"] == m]
  return hit[0] if hit else None


def allocation_report(rows: list[dict]) -> dict:
  """Fit of the allocation model on the rows (accuracy in [0, 1]) and predicted vs observed best per budget."""
  from lcjax.analysis import rag_allocation as ra

  base = _acc(rows, 0, 0)
  one_doc, one_shot = _acc(rows, 1, 0), _acc(rows, 0, 1)
  info = (0.0 if base is None or one_doc is None else one_doc - base,
          0.0 if base is None or one_shot is None else one_shot - base, 0.0)
  theta = np.array([[r["k"], r["m"], r["n"]] for r in rows], np.float64)
  perf = np.array([r["acc"] / 100 for r in rows])
  lengths = np.array([r["effective_length"] for r in rows])
  report = {"info": info, "points": len(rows)}
  if len(rows) >= 6:
    fit = ra.fit(theta, info, perf)
    report.update(a=list(fit.model.a), b=list(fit.model.b), c=fit.model.c, r2_linear=fit.r2_linear, r2=fit.r2)
    budgets = sorted({float(x) for x in np.quantile(lengths, [0.1, 0.25, 0.5, 0.75, 1.0])})
    table = []
    for budget in budgets:
      ok = lengths <= budget
      _, p_hat, idx = ra.budgeted_argmax(fit.model, theta, lengths, info, budget)
      observed = int(np.argmax(np.where(ok, perf, -np.inf)))
      paper = ra.budgeted_argmax(ra.PAPER, theta, lengths, info, budget)[2]
      table.append({"budget": budget, "predicted": rows[idx]["strategy"], "predicted_acc": perf[idx],
                    "predicted_p_hat": p_hat, "observed_best": rows[observed]["strategy"],
                    "observed_acc": perf[observed], "paper_constants": rows[paper]["strategy"],
                    "paper_constants_acc": perf[paper]})
    report["budgets"] = table
  return report


def run_drag(cfg: dict, workdir: str) -> dict:
  """Runs the grid (resumable records in workdir), fits, writes summary.json and the plot; returns the summary."""
  from lcjax.eval.rag import RagEvalConfig, plot_performance_vs_length, run_rag

  names = strategies(cfg["ks"], cfg["ms"], cfg["iter_ns"], cfg["iter_k"], cfg["iter_m"])
  out = {}
  pretrained = None
  for task in cfg["tasks"]:
    if pretrained is None:
      from lcjax.checkpoint import load_pretrained

      pretrained = load_pretrained(cfg["model"])
    task_names = names if task == "rag.facts" else cfg.get("other_strategies", names)
    rows = run_rag(RagEvalConfig(tasks=[task], strategies=task_names, model=cfg["model"], out_dir=workdir,
                                 num_questions=cfg["num_questions"], seed=cfg["seed"], data_dir=cfg.get("data_dir")),
                   pretrained)
    out[task] = {"rows": rows, "allocation": allocation_report(rows),
                 "plot": plot_performance_vs_length(rows, task, os.path.join(workdir, task, "fig1.png"))}
  with open(os.path.join(workdir, "drag_summary.json"), "w") as f:
    json.dump(out, f, indent=1, default=float)
  return out
