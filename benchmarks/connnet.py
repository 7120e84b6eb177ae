"""ConnNet vs the 1-channel baseline, with and without the non-local block (issue 17), on the synthetic set.

Trains the four variants of `experiments/connnet.py:runlocal` one after another in this process, evaluates each on
the "test" split and on the "large" split (one object spanning far beyond the convolutional receptive field), and
prints a markdown table (MAE, adaptive F_beta, max F, S-measure, boundary-band MAE, training time, images/s).

  python benchmarks/connnet.py --out /tmp/connnet_bench [--steps 300] [--variants conn_nl,conn,base_nl,base]
      [--extra batch=8,lr=3e-3]
  python benchmarks/connnet.py --out DIR --data DIR_WITH_A_DUTS_OR_ECSSD_FOLDER   also evaluates on a real folder
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lcjax.launch.experiments import load_experiment  # noqa: E402
from lcjax.vision.network import ConnNetConfig, receptive_field  # noqa: E402
from lcjax.vision.train import saliency_train_config, train_saliency  # noqa: E402

COLUMNS = ("mae", "fbeta_adaptive", "max_f", "s_measure", "boundary_mae")


def _cpu() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
  except (OSError, StopIteration):
    return platform.processor()


def run(variants, steps: int, out: str, data: str | None, extra: str = "") -> dict:
  """Trains and evaluates each variant; returns {variant: summary} (also written to out/<variant>/eval.json)."""
  exp = load_experiment(os.path.join(REPO, "experiments", "connnet.py"))
  results = {}
  for variant in variants:
    cfg = exp.get_config(f"runlocal,variant={variant},steps={steps}" + (f",{extra}" if extra else ""))
    if data:
      cfg.saliency.evals["real"] = {"source": "folder", "path": data, "size": cfg.saliency.data.size}
    t = time.perf_counter()
    results[variant] = train_saliency(saliency_train_config(cfg.saliency), os.path.join(out, variant))
    results[variant]["wall_seconds"] = time.perf_counter() - t
    print(variant, json.dumps(results[variant]["eval"]), flush=True)
  return results


def evaluate_saved(variants, out: str) -> dict:
  """Re-evaluates the models exported under out/<variant> on the experiment's current eval sets."""
  from lcjax.vision.train import evaluate, load_saliency_model

  exp = load_experiment(os.path.join(REPO, "experiments", "connnet.py"))
  results = {}
  for variant in variants:
    cfg = saliency_train_config(exp.get_config(f"runlocal,variant={variant}").saliency)
    with open(os.path.join(out, variant, "eval.json")) as f:
      results[variant] = json.load(f)
    model_cfg, graphdef, params = load_saliency_model(os.path.join(out, variant))
    for name, data in cfg.evals.items():
      results[variant]["eval"][name] = evaluate(graphdef, params, model_cfg, data, cfg.decode_rules)
    print(variant, json.dumps(results[variant]["eval"]), flush=True)
  return results


def table(results: dict) -> str:
  """Markdown rows: one per (variant, split, decode rule)."""
  lines = ["| variant | split | decode | MAE | F_beta adapt | max F | S | boundary MAE | train s | img/s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for variant, summary in results.items():
    for split, ev in summary["eval"].items():
      for rule, scores in ev.items():
        if not isinstance(scores, dict):
          continue
        cells = " | ".join(f"{scores[c]:.4f}" for c in COLUMNS)
        lines.append(f"| {variant} | {split} | {rule} | {cells} | {summary['train_seconds']:.0f} | "
                     f"{summary['images_per_s']:.1f} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--variants", default="conn_nl,conn,base_nl,base")
  parser.add_argument("--data", default=None, help="a DUTS / ECSSD style folder to evaluate on as well")
  parser.add_argument("--extra", default="", help="more experiment arguments, e.g. batch=8,lr=3e-3")
  parser.add_argument("--eval_only", action="store_true", help="re-evaluate the models already trained in --out")
  parser.add_argument("--table_only", action="store_true", help="the table of the eval.json files already in --out")
  args = parser.parse_args()
  if args.table_only:
    results = {}
    for variant in args.variants.split(","):
      path = os.path.join(args.out, variant, "eval.json")
      if os.path.exists(path):
        with open(path) as f:
          results[variant] = json.load(f)
  elif args.eval_only:
    results = evaluate_saved(args.variants.split(","), args.out)
  else:
    results = run(args.variants.split(","), args.steps, args.out, args.data, args.extra)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  exp = load_experiment(os.path.join(REPO, "experiments", "connnet.py"))
  model = ConnNetConfig(**{k: v for k, v in exp.get_config("runlocal").saliency.model.to_dict().items()})
  print(f"CPU: {_cpu()}; receptive field of the convolutions: {receptive_field(model)} px")
  print(table(results))


if __name__ == "__main__":
  main()
