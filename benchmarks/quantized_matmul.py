"""Which matmul forms XLA:CPU runs fastest on THIS CPU, for decode (M = 1) and prefill (M = 512) shapes.

Forms (x [M, K] @ W [K, N]; every quantised form is one `ops.quantized_matmul` xla form or its building block):
  fp32            f32 x, f32 W (the fp32 model's matmul)
  bf16            bf16 x, bf16 W, f32 accumulation (preferred_element_type)
  bf16->f32       f32 x, bf16 W converted in the graph (param_dtype bf16, compute f32)
  int8 pc         f32 x, int8 W converted, then the per-channel scale on the [M, N] result
  int8 dot        int8 x int8 -> int32 with dynamic per-row activation scales (form "int8_dot"), per-channel W
  int8 reduce     form "reduce": one fused multiply + reduce over K reading the int8 W (no dot)
  q8_0 / q4_1     form "dequant": W dequantised (f32, or bf16 with bf16 x) inside the jitted call, one dot
  q8_0 int8 dot   form "int8_dot" with 32-row groups
Each XLA flag set runs in its own subprocess (flags are read at start-up): default, `--xla_cpu_use_xnnpack=true`,
`--xla_cpu_use_onednn=true`. Rounds interleave the forms; medians with min-max over rounds.

  .venv/bin/python benchmarks/quantized_matmul.py [--rounds 3] [--write] [--note "..."]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results import machine_line, write_section  # noqa: E402

SHAPES = {"decode M=1, 576x1536 (gate)": (1, 576, 1536), "decode M=1, 576x49152 (tied head)": (1, 576, 49152),
          "decode M=1, 4096x4096": (1, 4096, 4096), "prefill M=512, 576x1536": (512, 576, 1536)}
FLAG_SETS = {"default": "", "xnnpack": "--xla_cpu_use_xnnpack=true", "onednn": "--xla_cpu_use_onednn=true"}


def _forms(m, k, n):
  import jax
  import jax.numpy as jnp

  from lcjax.ops.quantized_matmul import quantized_matmul
  from lcjax.quant import quantize_matrix

  key = jax.random.PRNGKey(0)
  w = jax.random.normal(key, (k, n), jnp.float32) * 0.05
  x = jax.random.normal(jax.random.fold_in(key, 1), (m, k), jnp.float32)
  q = {f: quantize_matrix(w, f) for f in ("int8", "q8_0", "q4_1")}
  f32 = jnp.float32
  qmm = lambda form: (lambda x, w: quantized_matmul(x, w, impl="xla", form=form))  # noqa: E731
  return {
      "fp32": (lambda x, w: jnp.dot(x, w, preferred_element_type=f32), x, w),
      "bf16": (lambda x, w: jnp.dot(x, w, preferred_element_type=f32), x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)),
      "bf16->f32": (lambda x, w: jnp.dot(x, w.astype(f32)), x, w.astype(jnp.bfloat16)),
      "int8 pc": (lambda x, w: jnp.dot(x, w.values.astype(f32)) * w.scale[0], x, q["int8"]),
      "int8 dot": (qmm("int8_dot"), x, q["int8"]),
      "int8 reduce": (qmm("reduce"), x, q["int8"]),
      "q8_0": (qmm("dequant"), x, q["q8_0"]),
      "q8_0 bf16": (qmm("dequant"), x.astype(jnp.bfloat16), q["q8_0"]),
      "q8_0 int8 dot": (qmm("int8_dot"), x, q["q8_0"]),
      "q4_1": (qmm("dequant"), x, q["q4_1"]),
      "q4_1 bf16": (qmm("dequant"), x.astype(jnp.bfloat16), q["q4_1"]),
  }


def run_here(rounds: int, seconds: float) -> dict:
  """Times every form on every shape in this process: {shape: {form: [microseconds per call per round]}}."""
  import jax

  out = {}
  for label, (m, k, n) in SHAPES.items():
    forms = _forms(m, k, n)
    compiled = {name: (jax.jit(fn).lower(x, w).compile(), x, w) for name, (fn, x, w) in forms.items()}
    times = {name: [] for name in forms}
    for _ in range(rounds):
      for name, (fn, x, w) in compiled.items():
        fn(x, w).block_until_ready()
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
          fn(x, w).block_until_ready()
          calls += 1
        times[name].append(1e6 * (time.perf_counter() - t0) / calls)
    out[label] = times
  return out


def _cell(ts, base):
  med = float(np.median(ts))
  return f"{med:.0f} ({min(ts):.0f}-{max(ts):.0f}) {base / med:.2f}x"


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--seconds", type=float, default=0.3, help="timing window per form and round")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--write", action="store_true")
  parser.add_argument("--note", default="")
  args = parser.parse_args()
  if args.child:
    json.dump(run_here(args.rounds, args.seconds), sys.stdout)
    return
  results = {}
  for name, flags in FLAG_SETS.items():
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--rounds", str(args.rounds),
                           "--seconds", str(args.seconds)], capture_output=True, text=True, env=env)
    if proc.returncode:
      print(f"flags {name!r} failed: {proc.stderr[-800:]}")
      continue
    results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"flags {name}: done", flush=True)
  lines = []
  for label in SHAPES:
    forms = list(next(iter(results.values()))[label])
    lines += [f"**{label}** — microseconds per call, median (min-max over rounds), speed-up vs default fp32", "",
              "| form | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results)]
    base = float(np.median(results["default"][label]["fp32"])) if "default" in results else 1.0
    for form in forms:
      lines.append(f"| {form} | " + " | ".join(_cell(r[label][form], base) for r in results.values()) + " |")
    lines.append("")
  table = "\n".join(lines)
  print(table)
  if args.write:
    write_section("quantized_matmul", f"Quantised matmul on XLA:CPU ({machine_line()}, {datetime.date.today()}, "
                  f"{args.rounds} interleaved rounds)", table + (f"\n{args.note}" if args.note else ""))


if __name__ == "__main__":
  main()
