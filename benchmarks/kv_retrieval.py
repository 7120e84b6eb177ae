"""Retrieval accuracy of every KV method vs dense on the bundled SmolLM2-135M: passkey prompts (RULER
niah_single_1: noise haystack, a number) and needle prompts (niah: essay haystack), real tokens from the eval
harness's generators. The same function (`lcjax.eval.kv_backends.retrieval_table`) takes any model.

  .venv/bin/python benchmarks/kv_retrieval.py [--lengths 1024,2048] [--budget 0.25] [--samples 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message="Some donated buffers")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--lengths", default="1024")
  parser.add_argument("--budget", type=float, default=0.25)
  parser.add_argument("--samples", type=int, default=2)
  parser.add_argument("--methods", default="all")
  parser.add_argument("--out", default="/tmp/kv_retrieval")
  args = parser.parse_args()
  from lcjax.checkpoint import load_pretrained
  from lcjax.eval.kv_backends import retrieval_table
  from lcjax.kvcache import KV_METHODS

  methods = [m for m in KV_METHODS.names() if m not in ("dense", "sink_kv")] if args.methods == "all" else \
      args.methods.split(",")
  rows = retrieval_table(load_pretrained("smollm2-135m"), methods, lengths=[int(x) for x in args.lengths.split(",")],
                         budget=args.budget, num_samples=args.samples, out_dir=args.out)
  print(f"| task | length | method (budget {args.budget}) | accuracy | dense accuracy | n |")
  print("|---|---:|---|---:|---:|---:|")
  for r in rows:
    print(f"| {r['task']} | {r['length']} | {r['kv']} | {r['score']:.1f} | {r['dense']:.1f} | {r['n']} |")


if __name__ == "__main__":
  main()
