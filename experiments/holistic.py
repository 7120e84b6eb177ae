"""Beyond retrieval (Goldman et al.'s high diffusion / high scope corner): HoloBench-style aggregation, LongIns
exams, LongGenBench long outputs, Needle Threading, LongProc procedures."""

import ml_collections

from lcjax.eval.experiment import apply_overrides, eval_config, parse_arg

TASKS = ["holobench.movies", "longins.gist", "longgenbench.gsm8k", "threading.thread", "threading.multi_thread",
         "longproc.path_traversal", "longproc.tom_tracking"]


def get_config(arg=None):
  args = parse_arg(arg)
  if args.get("runlocal"):
    section = eval_config(["holobench.movies", "threading.thread"], lengths=["1k"], max_new_tokens=32,
                          out_dir="results/eval/holistic_runlocal")
  else:
    section = eval_config(TASKS, lengths=["4k", "8k"], depths=[50], num_samples=5, out_dir="results/eval/holistic")
  return ml_collections.ConfigDict({"name": "holistic", "eval": apply_overrides(section, args)})


def sweep(add, arg=None):
  for density in (0.25, 0.5, 1.0):
    add(eval={"options": {"density": density}})
