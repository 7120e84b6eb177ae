"""Untie the Knots (Tian et al. 2024): knotted chunk shuffling with the tracing objective as a grain stage
(`lcjax.recipes.untie_knots`), on top of the normal data mixture.

  python -m lcjax.launch.main --config=experiments/untie_knots.py:runlocal --workdir=/tmp/utk
"""

import ml_collections

from configs import models, train
from lcjax.eval.experiment import parse_arg

SPECIAL = {"chunk_token": 3, "trace_token": 260, "slot_base": 261, "max_slots": 64}  # ids past the byte vocabulary


def get_config(arg=None):
  args = parse_arg(arg)
  docs = int(args.get("docs_per_knot", 4))
  vocab = SPECIAL["slot_base"] + SPECIAL["max_slots"]
  if args.get("runlocal"):
    model, seq_len, steps, chunk = models.tiny_decoder(vocab, dim=64, seq_len=512), 512, 30, (16, 64)
  else:
    model, seq_len, steps, chunk = {**models.tiny_decoder(vocab, dim=512, num_layers=8, heads=8),
                                    "max_seq_len": 8192}, 8192, 5000, (256, 2048)
  knot = {**SPECIAL, "docs_per_knot": docs, "min_chunk_len": chunk[0], "max_chunk_len": chunk[1]}
  data = {"sources": [train.gsm8k_text_source()], "seq_len": seq_len, "batch_size": 4, "augment": ["untie_knots"],
          "augment_options": {"untie_knots": knot}}
  section = {"model": model, "data": data, **train.local_run(steps), "optimizer": {"lr": 3e-3, "warmup_steps": 3}}
  return ml_collections.ConfigDict({"name": "untie_knots", "train": section})


def sweep(add, arg=None):
  """Documents per knot."""
  del arg
  for n in (2, 4, 8):
    add(arg=f"docs_per_knot={n}")
