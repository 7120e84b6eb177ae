"""Tasks: a data source (generator or official-format loader), prompt construction (chat template, the official
truncation rule), generation settings and the official metric, registered in `TASKS`.

  spec = SampleSpec(tokenizer=tok, length=4096, depth=50.0, seed=0, num_samples=2)
  task = TASKS.get("ruler.niah_single_2")
  for ex in task.examples(spec):
    ids = build_prompt(task, ex, tok, max_input_tokens=4096)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from lcjax.errors import ConfigError, ContextLengthError
from lcjax.registry import Registry

TRUNCATIONS = ("middle", "leval_words", "none")


@dataclasses.dataclass
class Example:
  """One evaluation item.

  Attributes:
    id: unique within the task (resume key together with length and depth).
    prompt: the user message (or raw text for tasks run without a chat template). For L-Eval-style truncation it
      contains "{document}" and `document` holds the text to cut.
    reference: what the metric compares against (answers, needle dict, ...).
    metric_kwargs: extra keyword arguments of the metric (all_classes, coursera, task, ...).
    meta: free-form facts (context tokens, needle depth, oracle hints) stored with the result.
    history: earlier chat turns [{"role", "content"}] (SCBench's golden multi-turn context).
    document: the truncatable document for `leval_words` truncation.
    max_new_tokens: per-example override of the task's generation budget (M4LE uses the length bucket).
    answer_prefix: text the answer starts with, appended after the chat template (RULER's answer prefix).
    companion: a second, independent prompt (no chat template, no truncation) whose greedy answer is appended to
      the prediction as `companion_format.format(answer)` before scoring (L-Eval sci_fi's document-free run).
  """

  id: str
  prompt: str
  reference: Any
  metric_kwargs: dict = dataclasses.field(default_factory=dict)
  meta: dict = dataclasses.field(default_factory=dict)
  history: Sequence[dict] = ()
  document: str | None = None
  max_new_tokens: int | None = None
  answer_prefix: str = ""
  companion: "Example | None" = None
  companion_format: str = "{}"


@dataclasses.dataclass(frozen=True)
class SampleSpec:
  """What a task's source needs to produce examples.

  Attributes:
    tokenizer: the evaluated model's tokenizer (lengths are measured in its tokens).
    length: target prompt length in tokens for generators; unused by loaders.
    depth: needle depth in percent (0 = start, 100 = end) for depth-aware generators; None -> the task's default.
    seed: base seed; sample i uses seed + i.
    num_samples: how many examples (generators) or at most how many (loaders; 0 = all).
    data_path: file or folder of the official data for loaders.
    options: task-specific overrides (num_needles, ...).
    problems: loaders append (file, line, message) here for malformed records they skip.
  """

  tokenizer: Any = None
  length: int | None = None
  depth: float | None = None
  seed: int = 0
  num_samples: int = 1
  data_path: str | None = None
  options: dict = dataclasses.field(default_factory=dict)
  problems: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Task:
  """A registered evaluation task.

  Attributes:
    benchmark: the benchmark it belongs to (ruler, needlebench, longbench, ...).
    source: SampleSpec -> list[Example].
    metric: a name in `lcjax.eval.metrics.METRICS`.
    max_new_tokens: generation budget (greedy decoding, as every official harness here uses).
    truncation: "middle" (LongBench/LooGLE: keep the first and last max/2 tokens of the prompt), "leval_words"
      (L-Eval: drop words from the end of the document until it fits), or "none" (too long raises).
    chat: wrap the prompt in the model's chat template (LongBench skips it for few-shot/code tasks).
    synthetic: the source is a generator taking `length` (and `depth` when `uses_depth`).
    data_file: path of the official file relative to a data directory (loaders).
    diffusion, scope: the task's position in Goldman et al.'s taxonomy (0..1 each, see taxonomy.py).
  """

  name: str
  benchmark: str
  source: Callable[[SampleSpec], list[Example]]
  metric: str
  max_new_tokens: int
  truncation: str = "middle"
  chat: bool = True
  synthetic: bool = False
  uses_depth: bool = False
  data_file: str | None = None
  diffusion: float = 0.0
  scope: float = 0.0
  doc: str = ""

  def examples(self, spec: SampleSpec) -> list[Example]:
    """The task's examples for `spec` (generators need a tokenizer and a length)."""
    if self.synthetic and (spec.tokenizer is None or not spec.length):
      raise ConfigError(f"task {self.name!r} is a generator: it needs a tokenizer and a length in tokens")
    return self.source(spec)


TASKS: Registry[Task] = Registry("eval task")


def register_task(task: Task) -> Task:
  """Adds `task` to `TASKS` (checking its truncation rule and metric name)."""
  from lcjax.eval.metrics import METRICS

  if task.truncation not in TRUNCATIONS:
    raise ConfigError(f"task {task.name}: truncation {task.truncation!r} not in {TRUNCATIONS}")
  METRICS.entry(task.metric)
  TASKS.register(task.name, task, doc=task.doc)
  return task


def middle_truncate(ids: Sequence[int], tokenizer, max_tokens: int) -> str:
  """LongBench `pred.py`: if too long, decode(first max/2 tokens) + decode(last max/2 tokens)."""
  half = int(max_tokens / 2)
  return tokenizer.decode(list(ids[:half])) + tokenizer.decode(list(ids[-half:]))


def leval_truncate(document: str, fits: Callable[[str], bool], max_tokens: int) -> str:
  """L-Eval baselines: while the document is too long, keep its first (max_tokens - cnt) space-separated words,
  cnt growing by 250 each round."""
  cnt = 0
  while not fits(document):
    document = " ".join(document.split(" ")[:max_tokens - cnt])
    cnt += 250  # once max_tokens - cnt < 0 the slice drops words from the end: the loop always terminates
  return document


def render_text(task: Task, example: Example, tokenizer, max_input_tokens: int | None) -> str:
  """The prompt text after the task's truncation rule (before the chat template)."""
  if example.document is not None:
    if task.truncation == "leval_words" and max_input_tokens:
      fits = lambda d: len(tokenizer.encode(d)) <= max_input_tokens  # noqa: E731
      document = leval_truncate(example.document, fits, max_input_tokens)
    else:
      document = example.document
    text = example.prompt.replace("{document}", document)
  else:
    text = example.prompt
  if task.truncation == "middle" and max_input_tokens:
    ids = tokenizer.encode(text)
    if len(ids) > max_input_tokens:
      text = middle_truncate(ids, tokenizer, max_input_tokens)
  return text


def build_prompt(task: Task, example: Example, tokenizer, max_input_tokens: int | None = None) -> list[int]:
  """Token ids of the prompt: truncated text, then (for chat tasks) the model's chat template with the history.

  Raises:
    ContextLengthError: truncation "none" and the prompt is longer than `max_input_tokens`.
  """
  text = render_text(task, example, tokenizer, max_input_tokens)
  if task.chat and getattr(tokenizer, "chat_template", None):
    messages = list(example.history) + [{"role": "user", "content": text}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
  elif example.history:
    text = "\n\n".join(m["content"] for m in example.history) + "\n\n" + text
  ids = tokenizer.encode(text + example.answer_prefix)
  if task.truncation == "none" and max_input_tokens and len(ids) > max_input_tokens:
    raise ContextLengthError(f"task {task.name}: prompt of {len(ids)} tokens exceeds {max_input_tokens}")
  return ids
