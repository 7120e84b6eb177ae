"""Lightning-attention hybrids (MiniMax-01): tiny all-softmax vs 3:1 hybrid vs all-linear decoders, identical but
for the mixer of each layer, trained on multi-query associative recall (MQAR) or on the shipped essays.

  variant=softmax   every layer softmax attention (a Llama decoder)
  variant=hybrid    [L, L, L, S]: 3 lightning layers per softmax layer (`lcjax.models.hybrid.hybrid(cfg, 4)`)
  variant=linear    every layer lightning
  task=mqar         kv_retrieval with "k v" pairs (64 keys x 64 values; 8 pairs at T=256, runlocal 4 pairs at T=64)
                    then queries "Q k v": retrieval accuracy at 1x / 2x the trained length (more filler)
  task=essays       language modelling on lcjax/assets/haystack (the loss curve is in workdir/metrics)

  python -m lcjax.launch.main --config=experiments/lightning.py:runlocal,variant=hybrid --workdir=/tmp/lightning
Decay: the MiniMax schedule (ALiBi slopes x depth factor, no q scale). `benchmarks/linear_attention.py` runs all
variants and writes the table in benchmarks/RESULTS.md.
"""

import ml_collections

from configs import models, train
from lcjax.eval.experiment import parse_arg

VARIANTS = ("softmax", "hybrid", "linear")
TASKS = ("mqar", "essays")
VOCAB = 260  # 4 specials + 64 keys + 64 values + 128 filler ids (lcjax.data.synthetic.KVVocab)


def layer_types(variant: str, num_layers: int) -> tuple[str, ...]:
  """The per-layer block types of a variant."""
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; accepted: {', '.join(VARIANTS)}")
  if variant == "softmax":
    return ("attention",) * num_layers
  if variant == "linear":
    return ("lightning",) * num_layers
  return tuple("attention" if (i + 1) % 4 == 0 else "lightning" for i in range(num_layers))


def get_config(arg=None):
  args = parse_arg(arg)
  variant, task = args.get("variant", "hybrid"), args.get("task", "mqar")
  if task not in TASKS:
    raise ValueError(f"unknown task {task!r}; accepted: {', '.join(TASKS)}")
  local = bool(args.get("runlocal"))
  seq_len = int(args.get("seq_len", 64 if local else 256))
  layers = int(args.get("layers", 4))
  model = models.tiny_decoder(VOCAB, dim=int(args.get("dim", 64)), num_layers=layers, heads=4, seq_len=seq_len)
  model.update(architecture="hybrid", layer_types=layer_types(variant, layers), decay_schedule="minimax",
               linear_block_size=32)
  pairs = int(args.get("pairs", 4 if local else 8))
  task_options = {"num_pairs": pairs, "num_keys": 64, "num_values": 64}
  if task == "mqar":
    source = {"name": "mqar", "format": "synthetic",
              "options": {"length": seq_len, "vocab_size": VOCAB, "extra_queries": int(args.get("extra", 8)),
                          **task_options}}
  else:
    source = train.essays_source()
  steps = int(args.get("steps", 700 if local else 3000))
  data = {"sources": [source], "seq_len": seq_len, "batch_size": int(args.get("batch", 16 if local else 64))}
  section = {"model": model, "data": data, **train.local_run(steps, log_every=50),
             "optimizer": {"lr": float(args.get("lr", 3e-3)), "warmup_steps": 100, "schedule": "cosine",
                           "weight_decay": 0.0}}
  config = {"name": f"lightning_{task}_{variant}", "train": section}
  if task == "mqar":
    config["retrieval"] = {"lengths": [seq_len, 2 * seq_len], "num_samples": 128, "rope": "train",
                           "options": task_options}
  return ml_collections.ConfigDict(config)


def sweep(add, arg=None):
  """Every variant on every task."""
  del arg
  for task in TASKS:
    for variant in VARIANTS:
      add(arg=f"task={task},variant={variant}")
