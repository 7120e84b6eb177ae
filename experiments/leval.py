"""L-Eval closed-ended (exam) and open-ended (F1 / ROUGE) tasks with L-Eval's word truncation and metrics."""

import ml_collections

from lcjax.eval.experiment import apply_overrides, eval_config, parse_arg

TASKS = ["leval.coursera", "leval.quality", "leval.tpo", "leval.sci_fi", "leval.financial_qa", "leval.multidoc_qa",
         "leval.news_summ"]


def get_config(arg=None):
  args = parse_arg(arg)
  if args.get("runlocal"):
    section = eval_config(["leval.tpo"], lengths=["2k"], num_samples=2, max_new_tokens=16,
                          out_dir="results/eval/leval_runlocal")
  else:
    section = eval_config(TASKS, lengths=["4k", "8k"], num_samples=0, out_dir="results/eval/leval")
  return ml_collections.ConfigDict({"name": "leval", "eval": apply_overrides(section, args)})


def sweep(add, arg=None):
  for task in get_config(arg).eval.tasks:
    add(eval={"tasks": [task]})
