"""Attention on CPU: xla_blockwise vs jax.nn.dot_product_attention (XLA) vs the materialising reference.

Causal self-attention, forward (and fwd+bwd at the smaller sizes), time (best of --repeats after a compile run)
and peak memory (XLA's compiled memory analysis: arguments + outputs + temporaries). A configuration whose peak
would exceed --max-gib is compiled but not run (reported as "not run"), so naive O(T^2) attention cannot swap the
shared machine. The Pallas kernels are not timed here: on CPU they only run in the interpreter (a correctness
tool, not a performance one); GPU numbers need a GPU machine (see benchmarks/RESULTS.md).

  python benchmarks/attention.py [--lengths 1024,...,32768] [--repeats 2] [--max-gib 3] [--write]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from benchmarks.results import best_seconds, compiled_peak_bytes, machine_line, write_section
from lcjax.ops import CAUSAL, attention

B, N, K, H = 1, 2, 1, 64


def _impls():
  dpa = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")  # noqa: E731
  return {"reference": lambda q, k, v: attention(q, k, v, mask=CAUSAL, impl="reference"),
          "xla_blockwise": lambda q, k, v: attention(q, k, v, mask=CAUSAL, impl="xla_blockwise"),
          "jax.nn.dot_product_attention": dpa}


def _inputs(t):
  ks = jax.random.split(jax.random.PRNGKey(0), 3)
  return (jax.random.normal(ks[0], (B, t, N, H)), jax.random.normal(ks[1], (B, t, K, H)),
          jax.random.normal(ks[2], (B, t, K, H)))


def _grad(fn):
  return jax.grad(lambda q, k, v: jnp.sum(fn(q, k, v)), argnums=(0, 1, 2))


def measure(fn, args, repeats: int, max_bytes: float) -> dict:
  """Compiles `fn`, reads its peak memory and, if it fits `max_bytes`, times it."""
  compiled = jax.jit(fn).lower(*args).compile()
  peak = compiled_peak_bytes(compiled)
  if peak > max_bytes:
    return {"seconds": None, "peak_mib": peak / 2**20}
  return {"seconds": best_seconds(compiled, args, repeats), "peak_mib": peak / 2**20}


def run(lengths, repeats: int, max_gib: float, grad_up_to: int) -> list[dict]:
  """One row per (length, impl, pass)."""
  rows = []
  for t in lengths:
    args = _inputs(t)
    for name, fn in _impls().items():
      passes = [("fwd", fn)] + ([("fwd+bwd", _grad(fn))] if t <= grad_up_to else [])
      for which, f in passes:
        r = measure(f, args, repeats if t <= 8192 else 1, max_gib * 2**30)
        flops = 4 * B * N * H * t * t / 2 * (1 if which == "fwd" else 3.5)  # causal: half the T x S products
        r.update(tokens=t, impl=name, which=which, gflops=None if r["seconds"] is None else flops / r["seconds"] / 1e9)
        rows.append(r)
        print(r, flush=True)
  return rows


def table(rows) -> str:
  lines = ["| tokens | impl | pass | s | GFLOP/s | peak MiB |", "|---:|---|---|---:|---:|---:|"]
  for r in rows:
    s = "not run (over budget)" if r["seconds"] is None else f"{r['seconds']:.3f}"
    g = "" if r["gflops"] is None else f"{r['gflops']:.1f}"
    lines.append(f"| {r['tokens']} | {r['impl']} | {r['which']} | {s} | {g} | {r['peak_mib']:.1f} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lengths", default="1024,2048,4096,8192,16384,32768")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--max-gib", type=float, default=3.0, help="do not run configurations above this peak")
  parser.add_argument("--grad-up-to", type=int, default=4096, help="also time fwd+bwd up to this length")
  parser.add_argument("--write", action="store_true", help="record in benchmarks/RESULTS.md")
  args = parser.parse_args()
  rows = run([int(x) for x in args.lengths.split(",")], args.repeats, args.max_gib, args.grad_up_to)
  body = (f"{machine_line()}, {time.strftime('%Y-%m-%d')}. Causal self-attention B={B}, N={N}, K={K}, H={H}, fp32; "
          f"best of {args.repeats} after a compile run (1 run above 8K); peak = XLA compiled memory analysis; "
          f"configurations over {args.max_gib} GiB are compiled, not run; GFLOP/s counts the causal half of the T x S "
          f"products (useful work; the reference and XLA compute all of it). Other processes shared the 2 cores. "
          f"Regenerate: `python benchmarks/attention.py --write`.\n\n{table(rows)}\n\n"
          "**GPU numbers are not measured yet**: no GPU machine was available to this session, so the Mosaic GPU "
          "and Triton kernels vs cuDNN flash attention (`jax.nn.dot_product_attention(implementation='cudnn')`) "
          "and TFLOP/s against the H100's ~800 bf16 TFLOP/s peak are still to be run.\n")
  print(body)
  if args.write:
    write_section("attention", "Attention kernels: blockwise vs XLA vs reference on CPU", body)


if __name__ == "__main__":
  main()
