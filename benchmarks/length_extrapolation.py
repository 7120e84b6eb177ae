"""Length-extrapolation study: a tiny decoder trained from scratch on kv retrieval (experiments/passkey.py),
evaluated at 1x / 2x / 4x its trained length with plain RoPE, position interpolation, E^2-LLM training and ABF.

  PYTHONPATH=. python benchmarks/length_extrapolation.py --workdir /tmp/lenx [--seq_len 256 --steps 1500]

Each trained model is saved under <workdir>/<variant>/model (orbax params + model_config.json); load it with
`lcjax.training.loop.load_trained(workdir)`. `pi` reuses the `rope` model (PI is applied at evaluation only).
The table goes into benchmarks/RESULTS.md (section `length_extrapolation`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results import machine_line, write_section  # noqa: E402
from lcjax.launch.experiments import load_experiment  # noqa: E402
from lcjax.training.config import train_config  # noqa: E402
from lcjax.training.loop import load_trained, train  # noqa: E402
from lcjax.training.retrieval import evaluate_retrieval  # noqa: E402

TRAINED = {"rope": "rope", "pi": "rope", "e2llm": "e2llm", "abf": "abf"}


def variant_config(variant: str, arg: str = ""):
  """The passkey experiment's ConfigDict for `variant` (train and retrieval sections)."""
  experiment = load_experiment(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                            "experiments", "passkey.py"))
  return experiment.get_config(f"{arg},variant={variant}" if arg else f"variant={variant}")


def train_variant(workdir: str, variant: str, arg: str = "") -> dict:
  """Trains `variant`'s model into <workdir>/<trained source> (`TRAINED`): {"train_s", "loss", "accuracy"}."""
  t0 = time.perf_counter()
  result = train(train_config(variant_config(variant, arg).train), os.path.join(workdir, TRAINED[variant]))
  return {"train_s": time.perf_counter() - t0, "loss": result["loss"], "accuracy": result["accuracy"]}


def run(workdir: str, arg: str) -> dict:
  """{variant: {"acc": {length: accuracy}, "train_s": seconds, "loss": final loss}}."""
  out, trained = {}, {}
  for variant, source in TRAINED.items():
    cfg = variant_config(variant, arg)
    tc = train_config(cfg.train)
    unit = os.path.join(workdir, source)
    if source not in trained:
      trained[source] = train_variant(workdir, variant, arg)
    _, _, params = load_trained(unit)
    acc = evaluate_retrieval(tc, params, cfg.retrieval.to_dict())
    out[variant] = {"acc": acc, **trained[source]}
    print(variant, json.dumps(out[variant]), flush=True)
  return out


def table(results: dict, seq_len: int, steps: int) -> str:
  lengths = list(next(iter(results.values()))["acc"])
  head = "| variant | train | eval RoPE | " + " | ".join(f"acc @ {n} ({int(n) // seq_len}x)" for n in lengths) + " |"
  rows = [head, "|---|---|---|" + "---:|" * len(lengths)]
  how = {"rope": ("plain RoPE, theta 1e4", "as trained"), "pi": ("plain RoPE, theta 1e4", "linear PI, s = L/T"),
         "e2llm": ("E2-LLM aug, g in {1..4} + offset", "linear PI, s = L/T"),
         "abf": ("ABF, theta 5e5", "as trained")}
  for v, r in results.items():
    rows.append(f"| {v} | {how[v][0]} | {how[v][1]} | " + " | ".join(f"{r['acc'][n]:.3f}" for n in lengths) + " |")
  return "\n".join(rows)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--workdir", default="/tmp/lcjax_length_extrapolation")
  p.add_argument("--arg", default="", help="experiment argument, e.g. seq_len=256,steps=1500")
  p.add_argument("--no_write", action="store_true")
  a = p.parse_args()
  results = run(a.workdir, a.arg)
  with open(os.path.join(a.workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  experiment_cfg = load_experiment(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                "experiments", "passkey.py")).get_config(a.arg or None)
  tc = train_config(experiment_cfg.train)
  body = table(results, tc.data.seq_len, tc.steps)
  times = ", ".join(f"{v} {r['train_s']:.0f} s (final train loss {r['loss']:.3f})" for v, r in results.items()
                    if v != "pi")
  body += (f"\n\nTiny Llama decoder ({tc.model.dim} dim, {tc.model.num_layers} layers, {tc.model.num_heads} heads, "
           f"vocab {tc.model.vocab_size}) trained from scratch for {tc.steps} steps of {tc.data.batch_size} x "
           f"{tc.data.seq_len} tokens on kv retrieval (`lcjax.data.synthetic.kv_retrieval`); accuracy = argmax "
           f"on the answer of each query, {experiment_cfg.retrieval.num_samples} held-out samples per length "
           f"(distinct seeds). Training time: {times}. `experiments/passkey.py`, "
           f"`benchmarks/length_extrapolation.py`.")
  title = (f"Length extrapolation of a tiny decoder on kv retrieval ({machine_line()}, "
           f"{datetime.date.today().isoformat()})")
  print(body)
  if not a.no_write:
    write_section("length_extrapolation", title, body)


if __name__ == "__main__":
  main()
