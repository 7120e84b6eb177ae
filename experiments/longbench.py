"""LongBench (v1) with the official prompts, middle truncation to the input budget, and official metrics.

Needs the official JSONL files (THUDM/LongBench data.zip) under data_dir/longbench/ (`data_dir=...` argument).
"""

import ml_collections

from lcjax.eval.experiment import apply_overrides, eval_config, parse_arg
from lcjax.eval.loaders.longbench import DATASET2MAXLEN


def get_config(arg=None):
  args = parse_arg(arg)
  tasks = [f"longbench.{name}" for name in DATASET2MAXLEN]
  if args.get("runlocal"):
    section = eval_config(["longbench.hotpotqa"], lengths=["2k"], num_samples=2, out_dir="results/eval/lb_runlocal",
                          data_dir="tests/eval/fixtures")
  else:
    section = eval_config(tasks, lengths=["8k"], num_samples=0, out_dir="results/eval/longbench")
  return ml_collections.ConfigDict({"name": "longbench", "eval": apply_overrides(section, args)})


def sweep(add, arg=None):
  for length in (4096, 8192):
    add(eval={"lengths": [length]})
