"""Evaluation harness: the seed benchmarks' tasks (generators and official-format loaders), their official metrics,
a resumable runner and plots.

  from lcjax.eval import TASKS, METRICS, SampleSpec, build_prompt
  task = TASKS.get("niah")
  examples = task.examples(SampleSpec(tokenizer=tok, length=2048, depth=25.0, num_samples=2))
"""

from lcjax.eval import tasks as _tasks  # noqa: F401  (registers every task)
from lcjax.eval import rag as _rag  # noqa: F401,E402  (registers the rag.<corpus> tasks)
from lcjax.eval.metrics import METRICS, Metric
from lcjax.eval.task import TASKS, Example, SampleSpec, Task, build_prompt

__all__ = ["METRICS", "Metric", "TASKS", "Example", "SampleSpec", "Task", "build_prompt"]
