"""E^2-LLM (Liu et al. 2024): one short-length training run with RoPE scale and position-offset augmentation
(`lcjax.recipes.e2llm`), evaluated at several lengths by position interpolation.

  python -m lcjax.launch.main --config=experiments/e2llm.py:runlocal --workdir=/tmp/e2llm
"""

import ml_collections

from configs import models, train
from lcjax.eval.experiment import parse_arg


def get_config(arg=None):
  args = parse_arg(arg)
  max_scale = int(args.get("max_scale", 4 if args.get("runlocal") else 16))
  scales = [float(g) for g in range(1, max_scale + 1)]
  if args.get("runlocal"):
    seq_len, model, steps, batch = 128, models.tiny_decoder(128, seq_len=128), 40, 8
    sources = [train.synthetic_source(seq_len, 128, num_pairs=4)]
  else:
    seq_len, model, steps, batch = 4096, models.llama2_7b(), 1000, 32
    sources = [train.essays_source()]
  data = {"sources": sources, "seq_len": seq_len, "batch_size": batch, "augment": ["e2llm"],
          "augment_options": {"e2llm": {"scales": scales, "offset": True}}}
  section = {"model": model, "data": data, **train.local_run(steps),
             "optimizer": {"lr": 3e-3 if args.get("runlocal") else 2e-5, "warmup_steps": 4}}
  if not args.get("runlocal"):
    section.update(remat="full", checkpoint={"every": 200})
  return ml_collections.ConfigDict({
      "name": "e2llm", "train": section,
      "retrieval": {"lengths": [seq_len * g for g in (1, 2, 4)], "num_samples": 32, "rope": "linear",
                    "options": {"num_pairs": 4}}})


def sweep(add, arg=None):
  """The largest training scale G."""
  del arg
  for g in (2, 4, 8):
    add(arg=f"max_scale={g}")
