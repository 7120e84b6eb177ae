"""Prefill and decode tokens/s on the bundled model at 1K and 4K context: lcjax vs HF transformers vs llama.cpp.

All three run in this one invocation on the same machine, one after the other (never concurrently), each with the
machine's cores. lcjax runs fp32 (the parity setting) and, as an extra row, bf16 params and compute. HF runs fp32 on torch CPU
(the weights dequantised from the same GGUF). llama.cpp runs the GGUF as stored (Q4_1/Q8_0), when llama-cpp-python
is installed in .venv-peers (`make peers` installs it).

  .venv/bin/python benchmarks/generate.py [--contexts 1024,4096] [--decode-tokens 32] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results import machine_line, write_section  # noqa: E402


def bench_lcjax(context: int, decode_tokens: int, dtype: str) -> tuple[float, float]:
  from lcjax.checkpoint import load_pretrained
  from lcjax.inference import Generator

  model = load_pretrained("smollm2-135m", dtype=dtype, param_dtype=dtype)
  gen = Generator(model.cfg, model.graphdef)
  prompt = np.random.default_rng(0).integers(100, 40000, context).tolist()
  gen.generate(model.state, [prompt], max_new_tokens=decode_tokens, stop_ids=[])  # compile
  best = None
  for _ in range(2):
    r = gen.generate(model.state, [prompt], max_new_tokens=decode_tokens, stop_ids=[])
    cur = (r.prefill_tokens_per_second, r.decode_tokens_per_second)
    best = cur if best is None else (max(best[0], cur[0]), max(best[1], cur[1]))
  return best


def bench_peer(script: str, context: int, decode_tokens: int, threads: int) -> dict | None:
  from lcjax.models.bundled import bundled_path
  from lcjax.peers import call_peer

  try:
    ans = call_peer(script, {"op": "bench", "gguf": bundled_path(), "context": context,
                             "decode_tokens": decode_tokens, "threads": threads}, threads=threads)
  except RuntimeError as e:
    print(f"  ({script} unavailable: {str(e).splitlines()[-1][:120]})")
    return None
  return ans


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--contexts", default="1024,4096")
  parser.add_argument("--decode-tokens", type=int, default=32)
  parser.add_argument("--write", action="store_true", help="record the table in benchmarks/RESULTS.md")
  parser.add_argument("--note", default="", help="a line recorded under the table (e.g. machine load)")
  args = parser.parse_args()
  threads = os.cpu_count() or 1
  contexts = [int(c) for c in args.contexts.split(",")]
  rows = []
  for ctx in contexts:
    hf = bench_peer("hf_peer.py", ctx, args.decode_tokens, threads)
    llama = bench_peer("llamacpp_peer.py", ctx, args.decode_tokens, threads)
    results = {
        "lcjax fp32": bench_lcjax(ctx, args.decode_tokens, "float32"),
        "lcjax bf16 (params + compute)": bench_lcjax(ctx, args.decode_tokens, "bfloat16"),
        "HF transformers fp32, forward loop": hf and (hf["prefill_tok_s"], hf["decode_tok_s"]),
        "HF transformers fp32, generate()": hf and (hf["generate_prefill_tok_s"], hf["generate_decode_tok_s"]),
        "llama.cpp Q4_1 (llama-cpp-python)": llama and (llama["prefill_tok_s"], llama["decode_tok_s"]),
    }
    hf = results["HF transformers fp32, forward loop"]
    for name, res in results.items():
      if res is None:
        continue
      ratio = f"{res[0] / hf[0]:.2f}x / {res[1] / hf[1]:.2f}x" if hf else "-"
      rows.append((ctx, name, res[0], res[1], ratio))
      print(f"{ctx:>6}  {name:<38} prefill {res[0]:8.1f} tok/s  decode {res[1]:6.1f} tok/s  vs HF {ratio}",
            flush=True)
  table = ["| context | engine | prefill tok/s | decode tok/s | vs HF forward loop (prefill / decode) |",
           "|---:|---|---:|---:|---|"]
  table += [f"| {c} | {n} | {p:.1f} | {d:.1f} | {r} |" for c, n, p, d, r in rows]
  print("\n".join(table))
  if args.write:
    write_section("generate", f"Generation throughput, SmolLM2-135M-Instruct ({machine_line()}, "
                  f"{datetime.date.today()}, {args.decode_tokens} decode tokens, batch 1, threads {threads})",
                  "\n".join(table) + (f"\n\n{args.note}" if args.note else ""))


if __name__ == "__main__":
  main()
