"""Retrieval accuracy of every KV method vs dense on the bundled SmolLM2-135M: passkey prompts (RULER
niah_single_1: noise haystack, a number) and needle prompts (niah: essay haystack), real tokens from the eval
harness's generators. The same function (`lcjax.eval.kv_backends.retrieval_table`) takes any model.

  .venv/bin/python benchmarks/kv_retrieval.py [--lengths 1024,2048] [--budget 0.25] [--samples 2]

--tiny WORKDIR: the tiny decoder trained on kv retrieval (benchmarks/length_extrapolation.py's E^2-LLM variant,
trained into WORKDIR when it has none), scored at its trained window and 4x it (linear PI, s = L/T) with every
method at budgets 1/4, 1/8 of the prompt and "all" (`lcjax.eval.kv_retrieval`: the same samples and answer
positions as the dense `lcjax.training.retrieval`); the table goes into RESULTS.md (section kv_retrieval_tiny).

  PYTHONPATH=. python benchmarks/kv_retrieval.py --tiny /tmp/lenx [--samples 128] [--budgets 0.25,0.125,all]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message="Some donated buffers")


# Method options sized for 256 - 1024-token prompts and budgets down to 1/8 (32 tokens at the trained window).
TINY_OPTIONS = {"dense": {"block_size": 8}, "retrolm": {"block_size": 8}, "longheads": {"block_size": 8},
                "longgen": {"block_size": 8, "full_every": 2}, "squeezed": {"local": 8},
                "a2ats": {"window": 8}, "specontext": {"local": 8}}
CALIBRATION_SEED = 20_000 * 1_000_003  # SpeContext's calibration sample: a seed no evaluation or training row uses


def _budget(text: str):
  return text if text == "all" else float(text)


def tiny_model(workdir: str, variant: str):
  """(trained ModelConfig, params, experiment ConfigDict) of the tiny kv-retrieval model, trained if missing."""
  from benchmarks.length_extrapolation import TRAINED, train_variant, variant_config
  from lcjax.training.loop import load_trained

  unit = os.path.join(workdir, TRAINED[variant])
  if not os.path.exists(os.path.join(unit, "model", "model_config.json")):
    print(f"training {variant} into {unit}:", train_variant(workdir, variant), flush=True)
  cfg, _, params = load_trained(unit)
  return cfg, params, variant_config(variant)


def tiny_rows(workdir: str, variant: str, methods, budgets, num_samples: int, batch_size: int = 16) -> list[dict]:
  """Rows {length, method, budget, acc, dense, n, queries, s} at the trained window and 4x it."""
  from lcjax.eval.kv_retrieval import (answer_span, calibration_prompt, method_retrieval_accuracy,
                                       specontext_retrieval_model)
  from lcjax.kvcache import make_method
  from lcjax.recipes.e2llm import inference_rope
  from lcjax.training.retrieval import retrieval_accuracy, retrieval_samples

  base, params, experiment = tiny_model(workdir, variant)
  spec = experiment.retrieval.to_dict()
  trained = int(experiment.train.data.seq_len)
  rows = []
  for length in (trained, 4 * trained):
    rope = inference_rope(base.rope, trained, length) if spec["rope"] == "linear" else base.rope
    cfg = base.replace(rope=rope, max_seq_len=max(length, base.max_seq_len))
    samples = retrieval_samples(length, base.vocab_size, num_samples, **spec["options"])
    dense = retrieval_accuracy(cfg, params, samples, batch_size)
    context = answer_span(samples)[0] - 1
    for name in methods:
      for budget in (["all"] if name == "dense" else budgets):  # dense ignores the budget
        t0 = time.perf_counter()
        method = make_method(name, budget=budget, **TINY_OPTIONS.get(name, {}))
        small = None
        if name == "specontext":
          tokens = context if budget == "all" else int(budget * context)
          small = specontext_retrieval_model(cfg, params, calibration_prompt(
              length, base.vocab_size, CALIBRATION_SEED, **spec["options"]), tokens, layers=1, keep=2)
        acc = method_retrieval_accuracy(cfg, params, method, samples, trained_len=trained, batch_size=batch_size,
                                        retrieval_model=small)
        rows.append({"length": length, "context": context, "method": name, "budget": budget, "acc": acc,
                     "dense": dense, "n": num_samples, "queries": samples["answers"].shape[1],
                     "s": time.perf_counter() - t0})
        print(rows[-1], flush=True)
  return rows


def tiny_table(rows: list[dict], trained: int) -> str:
  """The markdown table: one row per (length, method, budget)."""
  out = ["| length | method | budget | budget tokens | accuracy | dense accuracy | n samples (answers) |",
         "|---|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    b = r["budget"]
    tokens = "all" if b == "all" else str(max(1, int(b * r["context"])))
    label = "all" if b == "all" else f"1/{round(1 / b)}"
    out.append(f"| {r['length']} ({r['length'] // trained}x) | {r['method']} | {label} | {tokens} | "
               f"{r['acc']:.3f} | {r['dense']:.3f} | {r['n']} ({r['n'] * r['queries']}) |")
  return "\n".join(out)


def tiny_main(args) -> None:
  from benchmarks.results import machine_line, write_section
  from lcjax.kvcache import KV_METHODS

  methods = [m for m in KV_METHODS.names() if m != "sink_kv"] if args.methods == "all" else args.methods.split(",")
  budgets = [_budget(b) for b in args.budgets.split(",")]
  t0 = time.perf_counter()
  samples = args.samples or 128
  rows = tiny_rows(args.tiny, args.variant, methods, budgets, samples)
  trained = rows[0]["length"]
  body = tiny_table(rows, trained)
  body += (f"\n\n`PYTHONPATH=. python benchmarks/kv_retrieval.py --tiny {args.tiny} --samples {samples}`"
           f" ({time.perf_counter() - t0:.0f} s). Model: the {args.variant} variant of `experiments/passkey.py` "
           f"(benchmarks/length_extrapolation.py; trained window {trained}), evaluated with linear PI at "
           f"s = L/{trained}. Accuracy = exact match of the argmax on each query's answer (4 queries per sample), "
           f"the samples and positions of the dense `retrieval_accuracy` (dense accuracy column: its full forward "
           f"pass). Method: the prompt up to the first query's marker is prefilled (dense) into the method's cache, "
           f"the tokens from the first query's key on are teacher-forced one decode step each over the method's "
           f"selection; the budget is a fraction of that prompt (the `dense` method row: the same decode path over "
           f"every key). LongHeads keeps each head within the trained {trained} tokens (so its \"all\" row at 4x is "
           f"not dense). LongGen's pattern (1 of the 2 layers full) was not trained into this model. SpeContext's "
           f"retrieval model is the first of the 2 layers, its 2 heads calibrated on another sample. sink_kv is left "
           f"out (no trained sink key). Options: {TINY_OPTIONS}.")
  print(body)
  if not args.no_write:
    write_section("kv_retrieval_tiny", f"KV-method retrieval on the tiny kv-retrieval model at 1x and 4x its window "
                  f"({machine_line()}, {datetime.date.today().isoformat()})", body)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--lengths", default="1024")
  parser.add_argument("--budget", type=float, default=0.25)
  parser.add_argument("--samples", type=int, default=None, help="per cell (default 2; --tiny: 128)")
  parser.add_argument("--methods", default="all")
  parser.add_argument("--out", default="/tmp/kv_retrieval")
  parser.add_argument("--tiny", metavar="WORKDIR", default=None)
  parser.add_argument("--variant", default="e2llm", help="--tiny: the length_extrapolation variant (e2llm / pi)")
  parser.add_argument("--budgets", default="0.25,0.125,all", help="--tiny: budgets")
  parser.add_argument("--no_write", action="store_true", help="--tiny: do not write RESULTS.md")
  args = parser.parse_args()
  if args.tiny:
    return tiny_main(args)
  from lcjax.checkpoint import load_pretrained
  from lcjax.eval.kv_backends import retrieval_table
  from lcjax.kvcache import KV_METHODS

  methods = [m for m in KV_METHODS.names() if m not in ("dense", "sink_kv")] if args.methods == "all" else \
      args.methods.split(",")
  rows = retrieval_table(load_pretrained("smollm2-135m"), methods, lengths=[int(x) for x in args.lengths.split(",")],
                         budget=args.budget, num_samples=args.samples or 2, out_dir=args.out)
  print(f"| task | length | method (budget {args.budget}) | accuracy | dense accuracy | n |")
  print("|---|---:|---|---:|---:|---:|")
  for r in rows:
    print(f"| {r['task']} | {r['length']} | {r['kv']} | {r['score']:.1f} | {r['dense']:.1f} | {r['n']} |")


if __name__ == "__main__":
  main()
