"""TracLLM context attribution (Wang et al., USENIX Security'25) on planted contexts with SmolLM2-135M: a needle
("The secret code of X is N.") or an injected instruction among essay texts; precision / recall@K of the planted
text for TracLLM (search + STC/LOO/denoised-Shapley ensemble), LOO alone and attention weights, the answer after
removing the top-K texts, and value calls / forwards / seconds per attribution.

  python -m lcjax.launch.main --config=experiments/tracllm.py:runlocal --workdir=results/tracllm
"""

import ml_collections

from lcjax.eval.experiment import parse_arg


def get_config(arg=None):
  args = parse_arg(arg)
  if args.get("runlocal"):
    cfg = dict(contexts=3, num_texts=8, words_per_text=12, k=3, sh_n=2)
  else:  # the paper's defaults: 100-word segments, K=5, sh_N=20, 50 contexts per kind
    cfg = dict(contexts=50, num_texts=20, words_per_text=100, k=5, sh_n=20)
  if "contexts" in args:
    cfg["contexts"] = int(args["contexts"])
  kinds = args.get("kinds", ["needle", "injection"])
  cfg.update(model="smollm2-135m", kinds=kinds if isinstance(kinds, list) else [kinds], beta=0.2,
             score_funcs=["stc", "loo", "denoised_shapley"])
  return ml_collections.ConfigDict({"name": "tracllm", "attribution": cfg})


def sweep(add, arg=None):
  """One run covers every context (records are resumable)."""
  del arg
  add()
