"""Plots of evaluation results (matplotlib, Agg backend): the NIAH depth x length heatmap, score-vs-length curves
per KV method, and the taxonomy plane (diffusion x scope) of the registered tasks."""

from __future__ import annotations

import os
from typing import Sequence


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def depth_length_heatmap(rows: Sequence[dict], task: str, kv: str, path: str) -> str:
  """Heatmap of score by depth (rows) and length (columns) for one task and KV method; returns the PNG path.

  Args:
    rows: summary rows {"task", "kv", "length", "depth", "score"} (`runner.summarize`).
  """
  plt = _pyplot()
  cells = [r for r in rows if r["task"] == task and r["kv"] == kv and r["depth"] is not None]
  lengths = sorted({r["length"] for r in cells})
  depths = sorted({r["depth"] for r in cells})
  grid = [[float("nan")] * len(lengths) for _ in depths]
  for r in cells:
    grid[depths.index(r["depth"])][lengths.index(r["length"])] = r["score"]
  fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(lengths), 1.2 + 0.45 * len(depths)))
  image = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
  ax.set_xticks(range(len(lengths)), [_k(x) for x in lengths])
  ax.set_yticks(range(len(depths)), [f"{d:g}%" for d in depths])
  for i, row in enumerate(grid):
    for j, v in enumerate(row):
      if v == v:
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7)
  ax.set_xlabel("context length (tokens)")
  ax.set_ylabel("needle depth")
  ax.set_title(f"{task} [{kv}]")
  fig.colorbar(image, ax=ax, label="score")
  return _save(fig, path)


def score_vs_length(rows: Sequence[dict], task: str, path: str) -> str:
  """Mean score over depths vs length, one line per KV method; returns the PNG path."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5, 3.2))
  for kv in sorted({r["kv"] for r in rows if r["task"] == task}):
    by_len: dict = {}
    for r in rows:
      if r["task"] == task and r["kv"] == kv:
        by_len.setdefault(r["length"], []).append(r["score"])
    xs = sorted(by_len)
    ax.plot(xs, [sum(by_len[x]) / len(by_len[x]) for x in xs], marker="o", label=kv)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("context length (tokens)")
  ax.set_ylabel("score")
  ax.set_title(task)
  ax.legend()
  ax.grid(alpha=0.3)
  return _save(fig, path)


def plot_taxonomy(tasks, path: str) -> str:
  """Tasks on Goldman et al.'s plane: diffusion (x) vs scope (y), coloured by benchmark; returns the PNG path."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 6))
  benchmarks = sorted({t.benchmark for t in tasks})
  cmap = plt.get_cmap("tab20")
  for i, bench in enumerate(benchmarks):
    group = [t for t in tasks if t.benchmark == bench]
    ax.scatter([t.diffusion for t in group], [t.scope for t in group], color=cmap(i % 20), label=bench, s=18)
  for t in tasks:
    if t.name in ("niah", "ruler.cwe", "needlebench.atc", "longproc.tom_tracking", "holobench.movies",
                  "longbench.gov_report", "loogle.longdep_qa"):
      ax.annotate(t.name, (t.diffusion, t.scope), fontsize=6, xytext=(3, 3), textcoords="offset points")
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1)
  ax.set_xlabel("diffusion (how hard the needed information is to find)")
  ax.set_ylabel("scope (how much information is needed)")
  ax.set_title("Long-context task taxonomy (Goldman et al., 2024)")
  ax.legend(fontsize=6, ncol=2, loc="lower right")
  return _save(fig, path)


def _k(n: int) -> str:
  return f"{n // 1024}k" if n % 1024 == 0 and n >= 1024 else str(n)


def _save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  _pyplot().close(fig)
  return path
