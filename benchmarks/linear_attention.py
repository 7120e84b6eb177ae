"""Lightning (linear) attention vs softmax attention on CPU: prefill time and peak memory vs T, decode step time vs
context for all-softmax / 3:1 hybrid / all-linear models, and the MQAR table of `experiments/lightning.py`.

Every timed configuration is compiled first; then the engines are interleaved over --rounds rounds (one call each
per round) and the median (min-max) is reported, because the machine is shared. Peak memory is XLA's compiled
memory analysis. Softmax prefill above --softmax-up-to tokens is compiled (memory) but not timed.

  python benchmarks/linear_attention.py [--lengths 1024,...,65536] [--contexts 1024,...,32768] [--rounds 3]
      [--mqar-dir /tmp/lightning] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.results import compiled_peak_bytes, machine_line, write_section
from lcjax.config import ModelConfig
from lcjax.kvcache.dense import init_dense_cache
from lcjax.kvcache.recurrent import cache_bytes
from lcjax.models.build import init_model
from lcjax.ops import CAUSAL, attention, linear_attention
from lcjax.ops.linear_decay import decay_rates

B, N, H = 1, 2, 64
VARIANTS = ("softmax", "hybrid", "linear")


def _interleaved(calls: dict, rounds: int) -> dict:
  """{name: (median, min, max) seconds}: each compiled call warmed up once, then one call each per round."""
  for fn, args in calls.values():
    jax.block_until_ready(fn(*args))
  times = {name: [] for name in calls}
  for _ in range(rounds):
    for name, (fn, args) in calls.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(time.perf_counter() - start)
  return {name: (statistics.median(t), min(t), max(t)) for name, t in times.items()}


def prefill_rows(lengths, rounds: int, softmax_up_to: int, block: int) -> list[dict]:
  """Causal prefill of B x T x N x H: lightning `xla_blocked` vs softmax `xla_blockwise` at equal heads/dims."""
  rates = jnp.asarray(decay_rates("minimax", N, 0, 2), jnp.float32)
  impls = {"lightning xla_blocked": lambda q, k, v: linear_attention(q, k, v, rates, impl="xla_blocked",
                                                                     block_size=block),
           "softmax xla_blockwise": lambda q, k, v: attention(q, k, v, mask=CAUSAL, impl="xla_blockwise")}
  rows, calls = [], {}
  for t in lengths:
    ks = jax.random.split(jax.random.PRNGKey(t), 3)
    args = tuple(jax.random.normal(kk, (B, t, N, H)) for kk in ks)
    for name, fn in impls.items():
      compiled = jax.jit(fn).lower(*args).compile()
      row = {"tokens": t, "impl": name, "peak_mib": compiled_peak_bytes(compiled) / 2**20}
      rows.append(row)
      if name.startswith("lightning") or t <= softmax_up_to:
        calls[(t, name)] = (compiled, args)
  timed = _interleaved(calls, rounds)
  for row in rows:
    row["seconds"] = timed.get((row["tokens"], row["impl"]))
  return rows


def _model_cfg(variant: str) -> ModelConfig:
  cfg = ModelConfig(vocab_size=512, dim=256, num_layers=4, num_heads=4, num_kv_heads=4, head_dim=64, mlp_dim=512,
                    max_seq_len=1 << 17)
  types = {"softmax": ("attention",) * 4, "hybrid": ("lightning",) * 3 + ("attention",),
           "linear": ("lightning",) * 4}[variant]
  return cfg.replace(architecture="hybrid", layer_types=types)


def decode_rows(contexts, rounds: int) -> list[dict]:
  """One jitted decode step (batch 1) on a cache holding `context` tokens, per model variant."""
  rows, calls = [], {}
  for variant in VARIANTS:
    cfg = _model_cfg(variant)
    graphdef, state = nnx.split(init_model(cfg))

    def step(state, token, cache, graphdef=graphdef):
      logits, cache = nnx.merge(graphdef, state)(token, cache.lengths[:, None], cache=cache)
      return logits, cache

    for context in contexts:
      cache = init_dense_cache(cfg, 1, context)
      cache = cache.__class__(**{**vars(cache), "lengths": jnp.full((1,), context - 1, jnp.int32)})
      args = (state, jnp.ones((1, 1), jnp.int32), cache)
      calls[(variant, context)] = (jax.jit(step).lower(*args).compile(), args)
      rows.append({"variant": variant, "context": context, "cache_mib": cache_bytes(cache)["total"] / 2**20})
  timed = _interleaved(calls, rounds)
  for row in rows:
    row["seconds"] = timed[(row["variant"], row["context"])]
  return rows


def mqar_rows(workdir: str) -> list[dict]:
  """The MQAR runs of experiments/lightning.py in workdir/mqar_<variant> (trained with `lcjax.launch.main`)."""
  rows = []
  for variant in VARIANTS:
    run = os.path.join(workdir, f"mqar_{variant}")
    if not os.path.exists(os.path.join(run, "retrieval.json")):
      continue
    with open(os.path.join(run, "retrieval.json")) as f:
      retrieval = json.load(f)
    with open(os.path.join(run, "metrics.jsonl")) as f:
      metrics = [json.loads(line) for line in f if '"loss"' in line]
    curve = [(m["step"], m["loss"]) for m in metrics if m["step"] % 200 == 0 or m is metrics[-1]]
    rows.append({"variant": variant, "retrieval": retrieval, "curve": curve})
  return rows


def _secs(t) -> str:
  return "not timed" if t is None else f"{t[0]:.4f} ({t[1]:.4f}-{t[2]:.4f})"


def speed_tables(prefill, decode) -> str:
  out = ["Prefill (causal, B=1, N=2, H=64, fp32): median (min-max) seconds over the rounds.\n",
         "| tokens | impl | s | peak MiB |", "|---:|---|---:|---:|"]
  out += [f"| {r['tokens']} | {r['impl']} | {_secs(r['seconds'])} | {r['peak_mib']:.1f} |" for r in prefill]
  out += ["\nDecode step (batch 1; d=256, 4 layers of 4x64 heads) on a cache holding `context` tokens.\n",
          "| model | context | step s | cache MiB |", "|---|---:|---:|---:|"]
  out += [f"| {r['variant']} | {r['context']} | {_secs(r['seconds'])} | {r['cache_mib']:.2f} |" for r in decode]
  return "\n".join(out)


def mqar_table(mqar) -> str:
  if not mqar:
    return "(no finished runs found)"
  out = ["| model | " + " | ".join(f"acc @ {k}" for k in mqar[0]["retrieval"]) + " | loss curve (step: loss) |",
         "|---|" + "---:|" * len(mqar[0]["retrieval"]) + "---|"]
  for r in mqar:
    accs = " | ".join(f"{v:.3f}" for v in r["retrieval"].values())
    out.append(f"| {r['variant']} | {accs} | {', '.join(f'{s}: {l:.2f}' for s, l in r['curve'])} |")
  return "\n".join(out)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lengths", default="1024,2048,4096,8192,16384,32768,65536")
  parser.add_argument("--contexts", default="1024,4096,16384,32768")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--decode-rounds", type=int, default=9, help="decode steps are short: more rounds")
  parser.add_argument("--softmax-up-to", type=int, default=32768)
  parser.add_argument("--block", type=int, default=128)
  parser.add_argument("--mqar-dir", default=None, help="workdir holding mqar_<variant> runs of experiments/lightning")
  parser.add_argument("--write", action="store_true", help="record in benchmarks/RESULTS.md")
  args = parser.parse_args()
  head = (f"{machine_line()}, {time.strftime('%Y-%m-%d')}. Other jobs were running on the 2 shared cores during "
          f"these measurements (load average 20+), so absolute times are inflated and noisy. ")
  if args.mqar_dir:
    body = (f"{head}Regenerate: train the three variants with `python -m lcjax.launch.main "
            f"--config=experiments/lightning.py:runlocal,variant=V --workdir=DIR/mqar_V`, then "
            f"`python benchmarks/linear_attention.py --mqar-dir DIR --write`.\n\n{mqar_table(mqar_rows(args.mqar_dir))}\n")
    key, title = "linear_attention_mqar", "Lightning hybrids on MQAR (issue 12)"
  else:
    prefill = prefill_rows([int(x) for x in args.lengths.split(",")], args.rounds, args.softmax_up_to, args.block)
    decode = decode_rows([int(x) for x in args.contexts.split(",")], args.decode_rounds)
    body = (f"{head}Engines were interleaved over {args.rounds} rounds ({args.decode_rounds} for decode). Lightning "
            f"block C={args.block}. Regenerate: `python benchmarks/linear_attention.py --write`.\n\n"
            f"{speed_tables(prefill, decode)}\n")
    key, title = "linear_attention", "Lightning attention: prefill and decode vs softmax (issue 12)"
  print(body)
  if args.write:
    write_section(key, title, body)


if __name__ == "__main__":
  main()
