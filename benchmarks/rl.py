"""CISPO vs GRPO vs DAPO learning curves on a verifiable task (experiments/cispo.py's arms), seeds x arms
in one process: one format-only SFT warm start per seed shared by the arms, the same rollout budget per arm.

  python benchmarks/rl.py [--iterations 100] [--seeds 3] [--task digit_sum] [--write]

Reports per arm (median over seeds, min-max): success of the first rollout batch and at 25/50/100% of the
updates (success = mean reward of the batch's P x G samples, sampled at temperature 1), rollout batches to reach
success >= 0.5, mean zero-gradient-token fraction (all causes: Â = 0 in constant-reward groups, clipping) and the
part of it silenced by clipping (Â ≠ 0), clip fraction, mean KL to the rollout policy, wall seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results import machine_line, write_section  # noqa: E402
from lcjax.config import from_dict  # noqa: E402
from lcjax.launch.experiments import load_experiment  # noqa: E402
from lcjax.rl.train import RLConfig, rl_train  # noqa: E402
from lcjax.rl.warmstart import format_sft  # noqa: E402
from lcjax.training.config import CheckpointConfig  # noqa: E402

EXPERIMENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "cispo.py")


def _med(xs, fmt="{:.2f}"):
  xs = [x for x in xs if x is not None]
  if not xs:
    return "-"
  return f"{fmt.format(float(np.median(xs)))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--iterations", type=int, default=160)
  ap.add_argument("--seeds", type=int, default=3)
  ap.add_argument("--task", default="digit_sum2")
  ap.add_argument("--write", action="store_true")
  args = ap.parse_args()
  exp = load_experiment(EXPERIMENT)
  runs = {arm: [] for arm in exp.ARMS}
  for seed in range(args.seeds):
    base = exp.get_config(f"runlocal,seed={seed},task={args.task},iterations={args.iterations}")
    ws = base.warmstart
    cfg0 = from_dict(RLConfig, base.rl, "rl.")
    params, _ = format_sft(cfg0.model, cfg0.task, steps=ws.steps, batch=ws.batch, seq_len=cfg0.seq_len, lr=ws.lr,
                             seed=seed)
    for arm in exp.ARMS:  # interleaved: every seed runs all arms back to back
      cfg = from_dict(RLConfig, exp.get_config(
          f"runlocal,loss={arm},seed={seed},task={args.task},iterations={args.iterations}").rl, "rl.")
      t0 = time.perf_counter()
      out = rl_train(dataclasses.replace(cfg, checkpoint=CheckpointConfig(every=0)),
                     tempfile.mkdtemp(prefix=f"rl_{arm}_{seed}_"), init_params=params)
      hist = out["history"]
      runs[arm].append({"hist": hist, "seconds": time.perf_counter() - t0})
      curve = [round(h["success"], 2) for h in hist[::max(1, len(hist) // 10)]]
      print(f"seed {seed} {arm}: success {curve} last {hist[-1]['success']:.3f} "
            f"zero-grad {np.mean([h['zero_grad_fraction'] for h in hist]):.3f} clipped "
            f"{np.mean([h['clipped_zero_grad_fraction'] for h in hist]):.4f}", flush=True)
  n = args.iterations
  rows = []
  for arm, rs in runs.items():
    at = lambda frac: [r["hist"][max(0, int(round(frac * n)) - 1)]["success"] for r in rs]  # noqa: E731
    reach = [next((h["iteration"] for h in r["hist"] if h["success"] >= 0.5), None) for r in rs]
    mean = lambda k: [float(np.mean([h[k] for h in r["hist"]])) for r in rs]  # noqa: E731
    reached = sum(x is not None for x in reach)
    rows.append(f"| {arm} | {_med(at(0))} | {_med(at(0.25))} | {_med(at(0.5))} | {_med(at(1.0))} | "
                f"{_med(reach, '{:.0f}')} ({reached}/{len(rs)} seeds) | {_med(mean('zero_grad_fraction'))} | "
                f"{_med(mean('clipped_zero_grad_fraction'), '{:.3f}')} | "
                f"{_med(mean('clip_fraction'), '{:.3f}')} | {_med(mean('kl_rollout'), '{:.4f}')} | "
                f"{_med([r['seconds'] for r in rs], '{:.0f}')} |")
  cfg = from_dict(RLConfig, exp.get_config(f"runlocal,task={args.task}").rl, "rl.")
  body = (f"{machine_line()}, {datetime.date.today()}; other jobs were running on the machine (load average "
          f"{os.getloadavg()[0]:.0f} on 2 cores), so wall times are inflated. Regenerate: "
          f"`python benchmarks/rl.py --write`.\n\n"
          f"Task `{args.task}`; policy D={cfg.model.dim}, L={cfg.model.num_layers}, character vocab "
          f"{cfg.model.vocab_size}; format-only SFT warm start ({exp.get_config('runlocal').warmstart.steps} steps, "
          f"random answers) shared by the arms of a seed; RL: {n} rollout batches of "
          f"{cfg.prompts_per_batch} prompts x G={cfg.group_size} at temperature 1, {cfg.updates_per_batch} "
          f"minibatch Adam updates per batch (lr {cfg.optimizer.lr}, b2 0.95), {args.seeds} seeds. "
          f"Success = fraction of the batch's samples with reward 1 (before that batch's updates). "
          f"Median (min-max) over seeds. Token fractions are over the tokens in the loss: DAPO's dynamic sampling "
          f"removes constant-reward groups (Â = 0) from it, GRPO and CISPO keep them (zero gradient).\n\n"
          "| arm | success @ start | @ 25% | @ 50% | @ 100% | batches to success >= 0.5 | zero-grad token frac | "
          "of which clipped (Â ≠ 0) | clip frac | KL to rollout | wall s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
  print(body)
  if args.write:
    write_section("rl", "RL on a verifiable task: CISPO vs GRPO vs DAPO (issue 13)", body)


if __name__ == "__main__":
  main()
