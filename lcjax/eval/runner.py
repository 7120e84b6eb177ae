"""The evaluation runner: tasks x KV methods x lengths x depths x samples -> one JSONL record per example,
resumable, with per-cell aggregates from each task's official metric.

Results live in `out_dir/<task>/<model>__<kv>.jsonl`; a record's key is (length, depth, example id), so a killed run
restarted with the same arguments skips what is done. Generation goes through a KV backend from `KV_BACKENDS`
("dense" = `lcjax.inference.Generator` over the dense cache); KV methods register a backend factory
`(pretrained, **options) -> generate(prompt_ids, max_new_tokens) -> token ids` under their name.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Iterable, Sequence

from lcjax.errors import ConfigError, ContextLengthError
from lcjax.eval.metrics import METRICS
from lcjax.eval.task import TASKS, Example, SampleSpec, Task, build_prompt
from lcjax.registry import Registry

KV_BACKENDS: Registry[Callable] = Registry("KV method")


@KV_BACKENDS.register("dense", doc="dense KV cache: lcjax.inference.Generator, greedy")
def dense_backend(pretrained, **options) -> Callable[[list[int], int], list[int]]:
  """Greedy generation with the dense cache (the reference every KV method is compared with)."""
  from lcjax.inference import Generator

  gen = Generator(pretrained.cfg, pretrained.graphdef, prefill_chunk=options.get("prefill_chunk"))

  def generate(prompt: list[int], max_new_tokens: int) -> list[int]:
    return gen.generate(pretrained.state, [prompt], max_new_tokens=max_new_tokens).tokens[0]

  return generate


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """One evaluation sweep.

  Attributes:
    tasks: task names.  kv: KV method names (KV_BACKENDS).  lengths: prompt lengths in tokens for generators and
    input budgets (truncation) for loaders.  depths: needle depths in percent (depth-aware generators only).
    num_samples: samples per cell (generators) / examples per task (loaders, 0 = all).
    data_dir: folder of the official data (each task reads `data_dir/<task.data_file>`; None: `lcjax.assets.data_dir()`).
    options: task options (num_needles, density, ...).  max_new_tokens: cap on every task's budget (None: official).
  """

  tasks: Sequence[str]
  model: str = "smollm2-135m"
  kv: Sequence[str] = ("dense",)
  lengths: Sequence[int] = (1024,)
  depths: Sequence[float] = (50.0,)
  num_samples: int = 1
  seed: int = 0
  out_dir: str = "results/eval"
  data_dir: str | None = None
  options: dict = dataclasses.field(default_factory=dict)
  max_new_tokens: int | None = None

  def validate(self) -> None:
    """Fails on unknown task / KV names or empty sweeps, listing what is accepted."""
    for name in self.tasks:
      TASKS.entry(name)
    for name in self.kv:
      KV_BACKENDS.entry(name)
    if not self.tasks or not self.lengths:
      raise ConfigError("an evaluation needs at least one task and one length")


def results_path(out_dir: str, task: str, model: str, kv: str) -> str:
  """Where the JSONL of (task, model, kv) lives."""
  safe = os.path.basename(model.rstrip("/")).replace(".gguf", "")
  return os.path.join(out_dir, task, f"{safe}__{kv}.jsonl")


def load_results(path: str, problems: list | None = None) -> list[dict]:
  """Records already written (a truncated last line from a killed run is reported in `problems` and ignored)."""
  from lcjax.eval.loaders.common import read_jsonl

  return read_jsonl(path, [] if problems is None else problems) if os.path.exists(path) else []


def record_key(length, depth, example_id) -> str:
  """Resume key of one result."""
  return f"{length}|{depth}|{example_id}"


def _cells(task: Task, cfg: EvalConfig) -> Iterable[tuple[int, float | None]]:
  for length in cfg.lengths:
    for depth in (cfg.depths if task.uses_depth else [None]):
      yield length, depth


def _task_data(task: Task, cfg: EvalConfig) -> str | None:
  """The task's data folder: <data_dir>/<task.data_file>; without a data_dir, `lcjax.assets.data_dir()`
  ($LCJAX_DATA_DIR or the bundled real subsets)."""
  from lcjax.assets import data_dir

  root = cfg.data_dir or (data_dir() if task.data_file else None)
  if root and task.data_file:
    joined = os.path.join(root, task.data_file)
    return joined if os.path.exists(joined) else root
  return root


def plan(task: Task, cfg: EvalConfig, tokenizer, problems: list) -> list[tuple[int, float | None, Example]]:
  """Every (length, depth, example) of one task."""
  items = []
  for length, depth in _cells(task, cfg):
    spec = SampleSpec(tokenizer=tokenizer, length=length, depth=depth, seed=cfg.seed, num_samples=cfg.num_samples,
                      data_path=_task_data(task, cfg), options=dict(cfg.options), problems=problems)
    items += [(length, depth, ex) for ex in task.examples(spec)]
  return items


def evaluate_one(task: Task, example: Example, generate, tokenizer, length: int) -> dict:
  """Prompt -> generation -> official metric for one example (errors are recorded, not raised)."""
  budget = example.max_new_tokens or task.max_new_tokens
  try:
    ids = build_prompt(task, example, tokenizer, None if task.synthetic else max(length - budget, 1))
    tokens = generate(ids, budget)
  except ContextLengthError as e:
    return {"error": str(e), "score": None}
  prediction = tokenizer.decode(tokens)
  result = METRICS.get(task.metric).score(prediction, example.reference, **example.metric_kwargs)
  return {"prediction": prediction, "prompt_tokens": len(ids), "new_tokens": len(tokens), **result}


def run(cfg: EvalConfig, pretrained=None, progress: bool = True) -> dict:
  """Runs (or resumes) the sweep and returns {"summary": [...rows], "problems": [...]}; also writes summary.json."""
  cfg.validate()
  if pretrained is None:
    from lcjax.checkpoint import load_pretrained

    pretrained = load_pretrained(cfg.model)
  tok = pretrained.tokenizer
  problems: list = []
  todo = []
  for name in cfg.tasks:
    task = TASKS.get(name)
    if cfg.max_new_tokens:
      task = dataclasses.replace(task, max_new_tokens=min(task.max_new_tokens, cfg.max_new_tokens))
    items = plan(task, cfg, tok, problems)
    for kv in cfg.kv:
      path = results_path(cfg.out_dir, name, cfg.model, kv)
      _end_with_newline(path)  # a run killed mid-write leaves a partial last line: keep it on its own line
      done = {record_key(r["length"], r["depth"], r["id"]) for r in load_results(path, problems)}
      todo += [(task, kv, path, *it) for it in items if record_key(it[0], it[1], it[2].id) not in done]
  backends = {}
  with _progress(progress, len(todo)) as advance:
    for task, kv, path, length, depth, ex in todo:
      if kv not in backends:
        backends[kv] = KV_BACKENDS.get(kv)(pretrained, **cfg.options.get("kv_options", {}))
      if ex.max_new_tokens and cfg.max_new_tokens:
        ex = dataclasses.replace(ex, max_new_tokens=min(ex.max_new_tokens, cfg.max_new_tokens))
      out = evaluate_one(task, ex, backends[kv], tok, length)
      row = {"task": task.name, "kv": kv, "model": cfg.model, "length": length, "depth": depth, "id": ex.id,
             "reference": _jsonable(ex.reference), **out, "meta": _jsonable(ex.meta)}
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
      advance(f"{task.name} {kv} L={length} D={depth}")
  table = summarize(cfg)
  with open(os.path.join(cfg.out_dir, "summary.json"), "w") as f:
    json.dump({"summary": table, "problems": [list(p) for p in problems]}, f, indent=1)
  return {"summary": table, "problems": problems}


def summarize(cfg: EvalConfig) -> list[dict]:
  """Aggregates of every (task, kv, length, depth) cell with the task's official metric aggregate."""
  rows = []
  for name in cfg.tasks:
    metric = METRICS.get(TASKS.get(name).metric)
    for kv in cfg.kv:
      records = [r for r in load_results(results_path(cfg.out_dir, name, cfg.model, kv)) if r.get("score") is not None]
      cells: dict = {}
      for r in records:
        if r["length"] in cfg.lengths:
          cells.setdefault((r["length"], r["depth"]), []).append(r)
      for (length, depth), group in sorted(cells.items(), key=lambda kv_: (kv_[0][0], kv_[0][1] or 0)):
        agg = metric.aggregate(group)
        rows.append({"task": name, "kv": kv, "length": length, "depth": depth, "score": agg["score"],
                     "n": len(group)})
  return rows


def _end_with_newline(path: str) -> None:
  if os.path.exists(path) and os.path.getsize(path):
    with open(path, "rb+") as f:
      f.seek(-1, os.SEEK_END)
      if f.read(1) != b"\n":
        f.write(b"\n")


def _jsonable(value):
  return json.loads(json.dumps(value, default=str))


class _progress:
  """A rich progress bar (or nothing), used as a context manager yielding `advance(description)`."""

  def __init__(self, enabled: bool, total: int):
    self.enabled, self.total = enabled and total > 0, total

  def __enter__(self):
    if not self.enabled:
      return lambda description: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    self.bar.start()
    job = self.bar.add_task("evaluating", total=self.total)
    return lambda description: self.bar.update(job, advance=1, description=description)

  def __exit__(self, *exc):
    if self.enabled:
      self.bar.stop()
    return False


from lcjax.eval import kv_backends as _kv_backends  # noqa: E402,F401  (registers every KV method as a backend)
