"""MiniMax-M1's CISPO vs GRPO vs DAPO on a verifiable task (arch_rl.md §2(e)): a small character-level policy,
format-only SFT warm start (random answers of the right format: base success ≈ chance), then RL with the same
budget per arm (rollout batches of P prompts x G samples, U off-policy minibatch updates each).

  python -m lcjax.launch.main --config=experiments/cispo.py:runlocal,loss=cispo,seed=0 --workdir=/tmp/cispo
  python -m lcjax.launch.xm --config=experiments/cispo.py:runlocal --dry_run     # 3 arms x 3 seeds
  python benchmarks/rl.py --write                                                 # all arms, table in RESULTS.md

Arms: grpo (ε 0.2 / 0.2, token-level), dapo (0.2 / 0.28, dynamic sampling), cispo (no lower bound, ε_high 0.28;
MiniMax-M1 does not publish ε_high). Without runlocal: a larger character model and 4x the rollouts (SmolLM2 with
its tokenizer is not wired up; see NOTES-issue-13.md).
"""

import ml_collections

from configs import models
from lcjax.eval.experiment import parse_arg
from lcjax.rl.tasks import CharCodec

ARMS = {
    "grpo": {"loss": "grpo", "eps_low": 0.2, "eps_high": 0.2},
    "dapo": {"loss": "dapo", "eps_low": 0.2, "eps_high": 0.28, "dynamic_sampling": True},
    "cispo": {"loss": "cispo", "eps_low": 1.0, "eps_high": 0.28},
}


def get_config(arg=None):
  args = parse_arg(arg)
  local = bool(args.get("runlocal"))
  arm = ARMS[args.get("loss", "cispo")]
  model = models.tiny_decoder(CharCodec.vocab_size, dim=64 if local else 256, num_layers=2 if local else 4,
                              seq_len=32)
  model["eos_token_ids"] = (CharCodec.eos,)
  rl = {"model": model, "task": args.get("task", "digit_sum2"), **arm, "prompts_per_batch": 32, "group_size": 8,
        "updates_per_batch": 16, "seq_len": 16, "iterations": int(args.get("iterations", 80 if local else 400)),
        "seed": int(args.get("seed", 0)), "num_devices": 1,
        "optimizer": {"lr": 3e-4, "schedule": "constant", "b2": 0.95},
        "checkpoint": {"every": 25}}
  return ml_collections.ConfigDict({"name": "cispo", "rl": rl,
                                    "warmstart": {"steps": 150, "batch": 32, "lr": 3e-3}})


def sweep(add, arg=None):
  """Arms x seeds at equal budget."""
  del arg
  for loss in ARMS:
    for seed in range(3):
      add(arg=f"loss={loss},seed={seed}")
