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

from lcjax.errors import ConfigError, ContextLengthError, DataError, LcjaxError
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
  strict: bool = False  # stop at the first failing record instead of recording it and going on

  def validate(self) -> None:
    """Fails on unknown task / KV names, empty sweeps, a non-positive token cap or an --out that is a file."""
    for name in self.tasks:
      TASKS.entry(name)
    for name in self.kv:
      KV_BACKENDS.entry(name)
    if not self.tasks or not self.lengths:
      raise ConfigError("an evaluation needs at least one task and one length")
    if self.max_new_tokens is not None and self.max_new_tokens < 1:
      raise ConfigError(f"max_new_tokens must be >= 1 (or None for the tasks' own budgets), got "
                        f"{self.max_new_tokens}")
    if os.path.exists(self.out_dir) and not os.path.isdir(self.out_dir):
      raise ConfigError(f"the results folder {self.out_dir!r} is a file; pass a folder")


def results_path(out_dir: str, task: str, model: str, kv: str) -> str:
  """Where the JSONL of (task, model, kv) lives."""
  safe = os.path.basename(model.rstrip("/")).replace(".gguf", "")
  return os.path.join(out_dir, task, f"{safe}__{kv}.jsonl")


def load_results(path: str, problems: list | None = None) -> list[dict]:
  """Records already written that carry their key fields (others are reported in `problems` and ignored)."""
  from lcjax.eval.loaders.common import read_jsonl

  problems = [] if problems is None else problems
  rows = read_jsonl(path, problems) if os.path.exists(path) else []
  good = [r for r in rows if _well_formed(r)]
  if len(good) < len(rows):
    problems.append((path, None, f"{path}: {len(rows) - len(good)} record(s) without length/depth/id ignored"))
  return good


def _well_formed(r: dict) -> bool:
  """A results record with an int length, a numeric (or null) depth, an id, and a numeric (or null) score."""
  num = (int, float)
  return (type(r.get("length")) is int and (r.get("depth") is None or type(r.get("depth")) in num)
          and type(r.get("id")) in (str, int) and (r.get("score") is None or type(r.get("score")) in num))


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
  """Every (length, depth, example) of one task (a cell whose data cannot be read is recorded in `problems`)."""
  items = []
  for length, depth in _cells(task, cfg):
    spec = SampleSpec(tokenizer=tokenizer, length=length, depth=depth, seed=cfg.seed, num_samples=cfg.num_samples,
                      data_path=_task_data(task, cfg), options=dict(cfg.options), problems=problems)
    try:
      items += [(length, depth, ex) for ex in task.examples(spec)]
    except Exception as e:  # noqa: BLE001 - a malformed data file costs its cell, not the sweep (see --strict)
      if cfg.strict:
        raise
      kind = "" if isinstance(e, DataError) else f"{type(e).__name__}: "
      problems.append((task.name, None, f"{task.name} L={length} D={depth}: {kind}{str(e)[:300]}"))
  return items


_RECORD_ERRORS = (LcjaxError, TypeError, ValueError, KeyError, IndexError, AttributeError)


def evaluate_one(task: Task, example: Example, generate, tokenizer, length: int, strict: bool = False) -> dict:
  """Prompt -> generation -> official metric for one example. A prompt past the context, or (unless `strict`) any
  error of this one record (a malformed reference, a metric that cannot score it), is recorded, not raised."""
  budget = example.max_new_tokens or task.max_new_tokens
  try:
    ids = build_prompt(task, example, tokenizer, None if task.synthetic else max(length - budget, 1))
    tokens = generate(ids, budget)
  except ContextLengthError as e:
    return {"error": str(e), "error_kind": "context", "score": None}
  except _RECORD_ERRORS as e:  # the record's own fields (wrong types, text that is not text); not the model's
    if strict:
      raise
    return {"error": f"{type(e).__name__}: {str(e)[:300]}", "error_kind": "record", "score": None}
  try:
    prediction = tokenizer.decode(tokens)
    if example.companion is not None:  # L-Eval sci_fi: a second, document-free generation for the fact half
      raw = dataclasses.replace(task, chat=False, truncation="none")
      second = generate(build_prompt(raw, example.companion, tokenizer), budget)
      prediction += example.companion_format.format(tokenizer.decode(second))
    result = METRICS.get(task.metric).score(prediction, example.reference, **example.metric_kwargs)
  except Exception as e:  # noqa: BLE001 - one bad record must not end the sweep (see --strict)
    if strict:
      raise
    return {"error": f"{type(e).__name__}: {str(e)[:300]}", "error_kind": "record", "score": None}
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
      _repair_last_line(path, problems)  # a run killed mid-write leaves a partial last line: drop it once
      done = {record_key(r["length"], r["depth"], r["id"]) for r in load_results(path, problems)}
      todo += [(task, kv, path, *it) for it in items if record_key(it[0], it[1], it[2].id) not in done]
  backends = {}
  with _progress(progress, len(todo)) as advance:
    for task, kv, path, length, depth, ex in todo:
      if kv not in backends:
        backends[kv] = KV_BACKENDS.get(kv)(pretrained, **cfg.options.get("kv_options", {}))
      if ex.max_new_tokens and cfg.max_new_tokens:
        ex = dataclasses.replace(ex, max_new_tokens=min(ex.max_new_tokens, cfg.max_new_tokens))
      out = evaluate_one(task, ex, backends[kv], tok, length, cfg.strict)
      row = {"task": task.name, "kv": kv, "model": cfg.model, "length": length, "depth": depth, "id": ex.id,
             "reference": _jsonable(ex.reference), **out, "meta": _jsonable(ex.meta)}
      os.makedirs(os.path.dirname(path), exist_ok=True)
      try:
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
      except UnicodeEncodeError:  # a lone surrogate from the data (a JSON "\udcff" escape): keep it escaped
        line = (json.dumps(row) + "\n").encode("ascii")
      with open(path, "ab") as f:
        f.write(line)
      advance(f"{task.name} {kv} L={length} D={depth}")
  table = summarize(cfg)
  counts = count_outcomes(cfg, problems)
  os.makedirs(cfg.out_dir, exist_ok=True)
  with open(os.path.join(cfg.out_dir, "summary.json"), "w") as f:
    json.dump({"summary": table, "counts": counts, "problems": [list(p) for p in problems]}, f, indent=1)
  return {"summary": table, "problems": problems, "counts": counts}


def count_outcomes(cfg: EvalConfig, problems: list) -> dict:
  """{"scored", "failed", "skipped", "reasons"}: records with a score, records that failed (by error kind, with
  the first message of each), and data lines / cells skipped (the `problems`)."""
  scored, failed, reasons = 0, 0, {}
  for name in cfg.tasks:
    for kv in cfg.kv:
      for r in load_results(results_path(cfg.out_dir, name, cfg.model, kv)):
        if r.get("score") is not None:
          scored += 1
        elif r.get("error"):
          failed += 1
          reasons.setdefault(r.get("error_kind", "error"), str(r["error"])[:300])
  return {"scored": scored, "failed": failed, "skipped": len(problems), "reasons": reasons}


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


def _repair_last_line(path: str, problems: list) -> None:
  """Cuts a partial last line (no newline: a run killed mid-write) off the results file, reporting it once."""
  if not (os.path.exists(path) and os.path.getsize(path)):
    return
  with open(path, "rb+") as f:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(size - 1, 0))
    if f.read(1) == b"\n":
      return
    keep, pos = 0, size
    while pos > 0 and not keep:  # find the last newline, reading backwards in blocks
      start = max(pos - 65536, 0)
      f.seek(start)
      block = f.read(pos - start)
      cut = block.rfind(b"\n")
      keep, pos = (start + cut + 1, start) if cut >= 0 else (0, start)
    f.truncate(keep)
  problems.append((path, None, f"{path}: removed a partial last line ({size - keep} bytes) left by an "
                               f"interrupted run"))


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
