"""Tiny decoder trained from scratch on key-value retrieval, then evaluated at 1x / 2x / 4x its trained length
(the length-extrapolation study of issue 5; `benchmarks/length_extrapolation.py` runs all variants).

  variant=rope    plain RoPE (theta 10k), evaluated as trained
  variant=pi      the same training, evaluated with position interpolation (linear, factor L / T)
  variant=e2llm   trained with E^2-LLM scale (g in {1..4}) + offset augmentation, evaluated with PI (factor L / T)
  variant=abf     trained with an adjusted base frequency (500k), evaluated as trained

  python -m lcjax.launch.main --config=experiments/passkey.py:runlocal,variant=e2llm --workdir=/tmp/passkey
  load the model back: lcjax.training.loop.load_trained(workdir)  -> (ModelConfig, graphdef, params)
"""

import ml_collections

from configs import models, train
from lcjax.eval.experiment import parse_arg
from lcjax.recipes.abf import abf_rope

VARIANTS = ("rope", "pi", "e2llm", "abf")
VOCAB = 256
# Marker keys (one pair per key), values, each context pair fused into one token (one attention hop; see
# kv_retrieval); extra training queries give a denser signal (evaluation asks each pair once, without extras).


def get_config(arg=None):
  args = parse_arg(arg)
  variant = args.get("variant", "rope")
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; accepted: {', '.join(VARIANTS)}")
  seq_len = int(args.get("seq_len", 128 if args.get("runlocal") else 256))
  pairs = int(args.get("pairs", 4))
  task = {"num_pairs": pairs, "num_keys": pairs, "num_values": int(args.get("values", 8)), "fused": True}
  steps = int(args.get("steps", 300 if args.get("runlocal") else 500))
  model = models.tiny_decoder(VOCAB, dim=int(args.get("dim", 128)), seq_len=seq_len)
  if variant == "abf":
    model["rope"] = abf_rope(500_000.0)
  source = {"name": "kv_retrieval", "format": "synthetic",
            "options": {"length": seq_len, "vocab_size": VOCAB, "extra_queries": int(args.get("extra", 16)), **task}}
  data = {"sources": [source], "seq_len": seq_len, "batch_size": 16}
  if variant == "e2llm":
    data.update(augment=["e2llm"], augment_options={"e2llm": {"scales": [1.0, 2.0, 3.0, 4.0], "offset": True}})
  section = {"model": model, "data": data, **train.local_run(steps, log_every=25),
             "optimizer": {"lr": float(args.get("lr", 5e-3)), "warmup_steps": 50, "schedule": "cosine",
                           "weight_decay": 0.0}}
  return ml_collections.ConfigDict({
      "name": f"passkey_{variant}", "train": section,
      "retrieval": {"lengths": [seq_len, 2 * seq_len, 4 * seq_len], "num_samples": 128,
                    "rope": "linear" if variant in ("pi", "e2llm") else "train",
                    "options": task}})


def sweep(add, arg=None):
  """One run per variant (a point's `arg` is appended to the experiment argument, see lcjax.launch.xm)."""
  del arg
  for variant in VARIANTS:
    add(arg=f"variant={variant}")
