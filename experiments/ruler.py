"""RULER's 13 synthetic tasks (NIAH variants, variable tracking, common/frequent words) across lengths."""

import ml_collections

from lcjax.eval.experiment import apply_overrides, eval_config, parse_arg

RULER_TASKS = ["ruler.niah_single_1", "ruler.niah_single_2", "ruler.niah_single_3", "ruler.niah_multikey_1",
               "ruler.niah_multikey_2", "ruler.niah_multikey_3", "ruler.niah_multivalue", "ruler.niah_multiquery",
               "ruler.vt", "ruler.cwe", "ruler.fwe"]


def get_config(arg=None):
  args = parse_arg(arg)
  if args.get("runlocal"):
    section = eval_config(["ruler.niah_single_1", "ruler.vt"], lengths=["1k"], out_dir="results/eval/ruler_runlocal")
  else:
    section = eval_config(RULER_TASKS, lengths=["4k", "8k"], depths=[50], num_samples=10, out_dir="results/eval/ruler")
  return ml_collections.ConfigDict({"name": "ruler", "eval": apply_overrides(section, args)})


def sweep(add, arg=None):
  for task in get_config(arg).eval.tasks:
    add(eval={"tasks": [task]})
