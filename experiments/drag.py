"""DRAG / IterDRAG inference scaling (Yue et al., ICLR'25) with SmolLM2-135M: accuracy vs effective context length
over a (k documents, m shots) grid and IterDRAG iterations on the synthetic fact corpus (and LooGLE passages when
LCJAX_EVAL_DATA points at the data), then the computation allocation model fitted on the measurements and its
predicted-optimal configuration vs the observed best per budget.

  python -m lcjax.launch.main --config=experiments/drag.py:runlocal --workdir=results/drag
"""

import os

import ml_collections

from lcjax.eval.experiment import parse_arg


def get_config(arg=None):
  args = parse_arg(arg)
  if args.get("runlocal"):
    rag = dict(ks=[0, 1, 2, 4], ms=[0, 1, 2], iter_ns=[2, 3], iter_k=2, iter_m=1, num_questions=16)
  else:
    rag = dict(ks=[0, 1, 2, 4, 8, 16], ms=[0, 1, 2, 4], iter_ns=[2, 3, 4, 5], iter_k=4, iter_m=2, num_questions=150)
  tasks = ["rag.facts"] + (["rag.loogle"] if os.environ.get("LCJAX_EVAL_DATA") else [])
  rag.update(tasks=tasks, model="smollm2-135m", seed=int(args.get("seed", 0)), data_dir=os.environ.get(
      "LCJAX_EVAL_DATA", ""), other_strategies=["drag:k=0,m=0", "drag:k=1,m=0", "drag:k=2,m=0", "drag:k=4,m=0",
                                                "drag:k=2,m=1", "iterdrag:k=2,m=1,n=2"])
  if "questions" in args:
    rag["num_questions"] = int(args["questions"])
  return ml_collections.ConfigDict({"name": "drag", "rag": rag})


def sweep(add, arg=None):
  """One run covers the whole grid (records are resumable per strategy)."""
  del arg
  add()
