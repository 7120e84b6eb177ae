"""NeedleBench: single- and multi-needle retrieval, multi-needle reasoning, and the Ancestral Trace Challenge."""

import ml_collections

from lcjax.eval.experiment import apply_overrides, eval_config, parse_arg


def get_config(arg=None):
  args = parse_arg(arg)
  tasks = ["needlebench.single", "needlebench.multi_retrieval", "needlebench.multi_reasoning", "needlebench.atc"]
  if args.get("runlocal"):
    section = eval_config(tasks[:1], lengths=["1k"], depths=[50], out_dir="results/eval/needlebench_runlocal")
  else:
    section = eval_config(tasks, lengths=["4k", "8k"], depths=range(0, 101, 20), num_samples=2,
                          out_dir="results/eval/needlebench")
  return ml_collections.ConfigDict({"name": "needlebench", "eval": apply_overrides(section, args)})


def sweep(add, arg=None):
  for kv in get_config(arg).eval.kv:
    add(eval={"kv": [kv]})
