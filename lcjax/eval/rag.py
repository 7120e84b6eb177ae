"""RAG evaluation in the harness: tasks `rag.<corpus>` x strategies (DRAG / IterDRAG) -> one JSONL record per
question, resumable, with EM / F1 / accuracy and the exact effective context length of each answer.

  lcjax eval --task rag.facts --rag drag:k=8,m=2 --rag iterdrag:n=3 --samples 30
  rows = run_rag(RagEvalConfig(tasks=["rag.facts"], strategies=["drag:k=2,m=1"]), pretrained)

Records live in `out_dir/<task>/<model>__<strategy>.jsonl`, keyed by question id; the plot is accuracy vs mean
effective context length per strategy kind (the paper's Fig. 1 for this model).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Sequence

import numpy as np

from lcjax.errors import ConfigError
from lcjax.eval.metrics import METRICS
from lcjax.eval.task import Example, Task, register_task

PREFIX = "rag."


@dataclasses.dataclass(frozen=True)
class RagEvalConfig:
  """tasks: "rag.<corpus>" names.  strategies: "drag:k=..,m=.." / "iterdrag:..." strings.  num_questions: per task
  (0 = all; a seeded sample otherwise).  retriever: a name in `lcjax.rag.RETRIEVERS`."""

  tasks: Sequence[str]
  strategies: Sequence[str] = ("drag",)
  model: str = "smollm2-135m"
  out_dir: str = "results/eval"
  num_questions: int = 0
  seed: int = 0
  data_dir: str | None = None
  retriever: str = "bm25"


def corpus_name(task: str) -> str:
  """ "rag.facts" -> "facts" (UnknownNameError lists the corpora)."""
  from lcjax.rag import CORPORA

  if not task.startswith(PREFIX):
    raise ConfigError(f"RAG tasks are named rag.<corpus>; got {task!r}")
  name = task[len(PREFIX):]
  CORPORA.entry(name)
  return name


def select_questions(questions, n: int, seed: int):
  """All questions (n = 0) or a seeded sample of n in corpus order."""
  if not n or n >= len(questions):
    return list(questions)
  idx = np.sort(np.random.default_rng(seed).choice(len(questions), size=n, replace=False))
  return [questions[i] for i in idx]


def records_path(out_dir: str, task: str, model: str, strategy_label: str) -> str:
  safe = re.sub(r"[^A-Za-z0-9_.=,-]+", "_", strategy_label)
  return os.path.join(out_dir, task, f"{os.path.basename(model.rstrip('/')).replace('.gguf', '')}__{safe}.jsonl")


def _record(task, strategy, q, res) -> dict:
  scores = METRICS.get("rag.qa").score(res.prediction, list(q.answers))
  k, m, n = strategy.theta
  return {"task": task, "strategy": strategy.label, "kind": strategy.kind, "k": k, "m": m, "n": n, "id": q.id,
          "hops": q.hops, "question": q.question, "answers": list(q.answers), "prediction": res.prediction, **scores,
          "calls": res.calls, "prompt_lengths": res.prompt_lengths, "effective_length": res.effective_length,
          "reusable_tokens": res.reusable_tokens, "forced": res.forced, "follow_ups": res.follow_ups,
          "documents": res.documents}


def _records(path: str, problems: list) -> list[dict]:
  """The records already written to `path` (lines that are not a record with an id are reported in `problems`)."""
  from lcjax.eval.loaders.common import read_jsonl

  rows = read_jsonl(path, problems) if os.path.exists(path) else []
  good = [r for r in rows if isinstance(r, dict) and "id" in r]
  if len(good) < len(rows):
    problems.append((path, None, f"{path}: {len(rows) - len(good)} record(s) without an id ignored"))
  return good


def run_rag(cfg: RagEvalConfig, pretrained=None, lm=None, batch: int = 8) -> list[dict]:
  """Runs (or resumes) every task x strategy; returns the summary rows and writes summary + plot per task."""
  from lcjax.eval.runner import _repair_last_line
  from lcjax.rag import CORPORA, RETRIEVERS, answer_batch, parse_strategy
  from lcjax.rag.drag import PretrainedLM

  strategies = [parse_strategy(s) for s in cfg.strategies]
  names = [corpus_name(t) for t in cfg.tasks]
  problems: list = []  # damaged lines of earlier records: reported, not fatal
  if lm is None:
    if pretrained is None:
      from lcjax.checkpoint import load_pretrained

      pretrained = load_pretrained(cfg.model)
    lm = PretrainedLM(pretrained)
  rows = []
  for task, name in zip(cfg.tasks, names):
    corpus = CORPORA.get(name)(seed=cfg.seed, data_dir=cfg.data_dir)
    if not corpus.questions:
      raise ConfigError(f"corpus {name!r} has no questions (it is a retrieval-only corpus)")
    questions = select_questions(corpus.questions, cfg.num_questions, cfg.seed)
    retriever = RETRIEVERS.get(cfg.retriever)(corpus.store)
    for strategy in strategies:
      path = records_path(cfg.out_dir, task, cfg.model, strategy.label)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      _repair_last_line(path, problems)  # a run killed mid-write: its partial last record is dropped and redone
      done = {r["id"] for r in _records(path, problems)}
      todo = [q for q in questions if q.id not in done]
      for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        results = answer_batch(lm, retriever, corpus, chunk, strategy, cfg.seed)
        with open(path, "a", encoding="utf-8") as f:
          for q, res in zip(chunk, results):
            f.write(json.dumps(_record(task, strategy, q, res), ensure_ascii=False) + "\n")
      wanted = {q.id for q in questions}
      records = [r for r in _records(path, problems) if r["id"] in wanted]
      rows.append(summarize(task, strategy, records))
    with open(os.path.join(cfg.out_dir, task, "summary.json"), "w") as f:
      json.dump([r for r in rows if r["task"] == task], f, indent=1)
  for problem in problems:
    print(f"warning: {problem[-1]}")
  return rows


def summarize(task: str, strategy, records: Sequence[dict]) -> dict:
  """One summary row: accuracy / EM / F1 (percent), mean effective length, calls and reusable tokens."""
  agg = METRICS.get("rag.qa").aggregate(records)
  k, m, n = strategy.theta
  mean = lambda key: float(np.mean([r[key] for r in records])) if records else 0.0  # noqa: E731
  return {"task": task, "strategy": strategy.label, "kind": strategy.kind, "k": k, "m": m, "n": n,
          "acc": agg["score"], "em": agg["em"], "f1": agg["f1"], "effective_length": mean("effective_length"),
          "calls": mean("calls"), "reusable_tokens": mean("reusable_tokens"), "questions": len(records)}


def plot_performance_vs_length(rows: Sequence[dict], task: str, path: str, metric: str = "acc") -> str:
  """Accuracy vs mean effective context length, one marker per strategy kind, with the best-so-far frontier."""
  from lcjax.eval.plots import _pyplot, _save

  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 3.6))
  cells = [r for r in rows if r["task"] == task]
  for kind, marker in (("drag", "o"), ("iterdrag", "s")):
    pts = [r for r in cells if r["kind"] == kind]
    if pts:
      ax.scatter([r["effective_length"] for r in pts], [r[metric] for r in pts], marker=marker, label=kind.upper())
  ordered = sorted(cells, key=lambda r: r["effective_length"])
  best, frontier = -1.0, []
  for r in ordered:
    best = max(best, r[metric])
    frontier.append(best)
  if ordered:
    ax.step([r["effective_length"] for r in ordered], frontier, where="post", color="gray", alpha=0.6,
            label="optimal config")
  ax.set_xscale("log")
  ax.set_xlabel("effective context length (tokens, all calls)")
  ax.set_ylabel(f"{metric} (%)")
  ax.set_title(task)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  return _save(fig, path)


def _questions_source(name: str):
  def source(spec) -> list[Example]:
    from lcjax.rag import CORPORA, closed_book_prompt

    corpus = CORPORA.get(name)(seed=spec.seed, data_dir=spec.data_path)
    qs = select_questions(corpus.questions, spec.num_samples, spec.seed)
    return [Example(q.id, closed_book_prompt(q), list(q.answers), meta={"hops": q.hops}) for q in qs]

  return source


def _register_tasks() -> None:
  from lcjax.eval.taxonomy import tags_for

  for name, doc in (("facts", "synthetic fact QA (invented entities, 1-2 hops)"),
                    ("loogle", "LooGLE short-dependency QA over passages")):
    diffusion, scope = tags_for(PREFIX + name, "rag")
    register_task(Task(name=PREFIX + name, benchmark="rag", source=_questions_source(name), metric="rag.qa",
                       max_new_tokens=24, truncation="none", chat=False, data_file="loogle" if name == "loogle"
                       else None, diffusion=diffusion, scope=scope,
                       doc=f"RAG {doc}: run with --rag drag:k=..,m=.. / iterdrag:n=.."))


_register_tasks()
