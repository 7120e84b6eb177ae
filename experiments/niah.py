"""NIAH depth x length sweep (RULER's niah_single_2: essay haystack, word key, 7-digit value) per KV method.

  lcjax eval --task niah --model smollm2 --kv dense --lengths 1k,2k,4k --depths 0:100:10
  lcjax.eval.experiment.run_config(get_config("runlocal"))   # the same sweep from this config
"""

import ml_collections

from lcjax.eval.experiment import apply_overrides, eval_config, parse_arg


def get_config(arg=None):
  args = parse_arg(arg)
  if args.get("runlocal"):
    section = eval_config(["niah"], lengths=["512"], depths=[0, 100], out_dir="results/eval/niah_runlocal")
  else:
    section = eval_config(["niah"], lengths=["1k", "2k", "4k", "8k"], depths=range(0, 101, 10), num_samples=3,
                          out_dir="results/eval/niah")
  return ml_collections.ConfigDict({"name": "niah", "eval": apply_overrides(section, args)})


def sweep(add, arg=None):
  """One run per KV method (each run covers every length and depth)."""
  for kv in get_config(arg).eval.kv:
    add(eval={"kv": [kv]})
