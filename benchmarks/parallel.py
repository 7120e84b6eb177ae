"""Parallelism on 8 virtual CPU devices: plain DP vs ByteScale HDP on a long-tail length mix, and context-parallel
attention (ring vs all-gather KV) at 16K-64K tokens.

Per strategy: step time (best of --repeats after a compile run), per-device peak memory (XLA's compiled memory
analysis of the per-device SPMD program: arguments + outputs + temporaries - aliased), and the communication
volume: bytes each device receives per step through collectives, counted from the compiled HLO (result size of
every collective-permute / all-gather / all-reduce / reduce-scatter / all-to-all), plus the attention-only share.

The 8 devices are virtual (XLA_FLAGS=--xla_force_host_platform_device_count=8) and share this machine's cores, so
wall-clock times measure total work, not parallel speed-up; timings are disturbed by other processes on the machine.

  python benchmarks/parallel.py [--tokens 16384,32768,65536] [--repeats 2] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from benchmarks.results import best_seconds, compiled_peak_bytes, machine_line, write_section  # noqa: E402
from lcjax.config import MeshConfig, ModelConfig  # noqa: E402
from lcjax.models.build import init_model  # noqa: E402
from lcjax.ops import MaskSpec, attention  # noqa: E402
from lcjax.sharding import hdp, steps  # noqa: E402
from lcjax.sharding import partition as part  # noqa: E402
from lcjax.sharding.layout import to_layout  # noqa: E402
from lcjax.sharding.mesh import create_mesh  # noqa: E402

R = 8
# Attention-heavy small decoder: long sequences make attention dominate, as in long-context training.
CFG = ModelConfig(vocab_size=256, dim=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, mlp_dim=128,
                  max_seq_len=65536)
_COLLECTIVE = re.compile(r"= (\w+)\[([\d,]*)\][^=]*? (collective-permute|all-gather|all-reduce|reduce-scatter|"
                         r"all-to-all)(?:-start)?\(")
_BYTES = {"f32": 4, "s32": 4, "u32": 4, "bf16": 2, "f16": 2, "pred": 1, "s8": 1, "u8": 1, "f64": 8, "s64": 8}


def collective_bytes(hlo: str) -> int:
  """Bytes per device produced by the collectives of a compiled per-device HLO module."""
  total = 0
  for dtype, dims, _ in _COLLECTIVE.findall(hlo):
    total += _BYTES.get(dtype, 4) * int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
  return total


def measure(fn, args, repeats: int) -> dict:
  """Compile, run once, then time `repeats` runs (best); memory and communication from the compiled module."""
  compiled = fn.lower(*args).compile()
  return {"seconds": best_seconds(compiled, args, repeats), "peak_mib": compiled_peak_bytes(compiled) / 2**20,
          "comm_mib": collective_bytes(compiled.as_text()) / 2**20}


def long_tail(n: int, max_len: int, seed: int = 0) -> np.ndarray:
  """Pareto(1.1) lengths from 64 tokens, capped at max_len (the same family as tests/sharding/test_hdp.py)."""
  rng = np.random.default_rng(seed)
  return np.minimum((rng.pareto(1.1, n) + 1) * 64, max_len).astype(int)


def _grad_step(mesh, rules, impl, batch, extras=None):
  graphdef, params = nnx.split(init_model(CFG.replace(attention_impl=impl)))
  ps, bs = part.param_shardings(params, mesh, rules), part.batch_shardings(batch, mesh, rules)
  fn = steps.make_grad_step(steps.llama_loss(graphdef), mesh, rules, ps, bs, extras=extras)
  return fn, (part.place(params, ps), part.place(batch, bs))


def bench_hdp(repeats: int, n: int, max_len: int) -> str:
  lengths = long_tail(n, max_len)
  rng = np.random.default_rng(1)
  sequences = [rng.integers(0, CFG.vocab_size, k + 1) for k in lengths]
  kv_token = 2 * CFG.num_kv_heads * CFG.head_dim * 4 + 8  # K, V, position and segment id of one token
  mesh = create_mesh(MeshConfig(fsdp=R))
  rows = []

  # Plain DP: sequence i whole on rank i mod 8, each rank's sequences packed in one row (document masks).
  plan = hdp.round_robin_plan(lengths, R)
  fn, args = _grad_step(mesh, "fsdp", "xla_blockwise", hdp.pack(sequences, plan))
  rows.append(("plain DP (round robin, packed)", (R, plan.capacity), plan.imbalance(), 0, measure(fn, args, repeats)))

  # Static CP: all sequences packed in one row, split zigzag over an 8-rank ring (a static DP=1 x CP=8 mesh).
  cp_mesh = create_mesh(MeshConfig(fsdp=1, context=R))
  one = hdp.schedule(lengths, 1, int(np.ceil(lengths.sum() / (2 * R)) * 2 * R))
  flat = to_layout(hdp.pack(sequences, one), R, "zigzag")
  fn, args = _grad_step(cp_mesh, "fsdp_cp", "ring", flat)
  ring = CFG.num_layers * R * (R - 1) * (one.capacity // R) * kv_token * 3  # fwd kv + bwd (kv, dkv)
  rows.append(("static CP ring (1 x 8)", (1, one.capacity), 1.0, ring, measure(fn, args, repeats)))

  # HDP: short sequences whole on one rank, long ones over just enough ranks, rings only inside groups.
  plan = hdp.schedule(lengths, R, int(np.ceil(lengths.sum() / R * 1.5 / 64) * 64))
  fn, args = _grad_step(mesh, "fsdp", "hdp", hdp.pack(sequences, plan), extras={"hdp": plan.ring_layout})
  rows.append((f"HDP (ring groups of {[len(g) for g in plan.groups]} ranks)", (R, plan.capacity), plan.imbalance(),
               CFG.num_layers * hdp.ring_bytes(plan, kv_token) * 3, measure(fn, args, repeats)))

  lines = [f"{len(lengths)} sequences, Pareto(1.1) lengths 64..{max_len} (max {lengths.max()}, total "
           f"{lengths.sum()} tokens); decoder D={CFG.dim}, L={CFG.num_layers}, N={CFG.num_heads}, "
           f"K={CFG.num_kv_heads}, H={CFG.head_dim}; one grad step (fwd + bwd), params FSDP over the 8 ranks.", "",
           "| strategy | batch [rows, tokens] | max/min attention cost (sum len^2) per rank | attention ring MiB "
           "(analytic, all ranks) | step s | peak MiB / device | collective MiB / device (HLO) |",
           "|---|---|---|---|---|---|---|"]
  for name, shape, imb, ring, r in rows:
    lines.append(f"| {name} | {list(shape)} | {imb:.2f} | {ring / 2**20:.1f} | {r['seconds']:.2f} | "
                 f"{r['peak_mib']:.1f} | {r['comm_mib']:.1f} |")
  return "\n".join(lines)


def bench_context(tokens: list[int], repeats: int) -> str:
  mesh = create_mesh(MeshConfig(fsdp=1, context=R))
  n, k, h = 2, 1, 32
  lines = [f"Causal attention, B=1, N={n}, K={k}, H={h}, fp32, tokens in zigzag layout over `context`=8; forward "
           f"only (fwd+bwd at the smallest size). Ring passes each rank's K/V block around 7 times; all-gather "
           f"assembles all K/V on every rank: the same volume, but its memory grows with the full K/V (small here, "
           f"one kv head) while the ring holds one block in flight.", "",
           "| tokens | impl | pass | s | peak MiB / device | collective MiB / device (HLO) |",
           "|---|---|---|---|---|---|"]
  for t in tokens:
    shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, "context"))
    q = jax.device_put(jnp.ones((1, t, n, h)), shard)
    kv = jax.device_put(jnp.ones((1, t, k, h)), shard)
    # Tokens are already in zigzag order (as a data pipeline would give them): positions say where each one is.
    pos = jax.device_put(jnp.asarray(to_layout({"t": np.zeros((1, t))}, R, "zigzag")["positions"]), shard)
    mask = MaskSpec(causal=True, q_positions=pos, kv_positions=pos)
    for impl in ("ring", "allgather_kv"):
      for which in ("fwd", "fwd+bwd") if t == min(tokens) else ("fwd",):
        def f(q, kk, v, impl=impl, which=which):
          with part.use_sharding(mesh, "fsdp_cp"):
            if which == "fwd":
              return attention(q, kk, v, mask=mask, impl=impl)
            return jax.grad(lambda *a: jnp.sum(attention(*a, mask=mask, impl=impl)), argnums=(0, 1, 2))(q, kk, v)

        r = measure(jax.jit(f), (q, kv, kv), repeats)
        lines.append(f"| {t} | {impl} | {which} | {r['seconds']:.2f} | {r['peak_mib']:.1f} | {r['comm_mib']:.1f} |")
        print(lines[-1], flush=True)
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tokens", default="16384,32768,65536")
  parser.add_argument("--sequences", type=int, default=64)
  parser.add_argument("--max-len", type=int, default=4096)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--write", action="store_true", help="record in benchmarks/RESULTS.md")
  args = parser.parse_args()
  print(machine_line(), f"{len(jax.devices())} devices")
  hdp_table = bench_hdp(args.repeats, args.sequences, args.max_len)
  print(hdp_table, flush=True)
  cp_table = bench_context([int(x) for x in args.tokens.split(",")], args.repeats)
  print(cp_table)
  if args.write:
    date = datetime.date.today().isoformat()
    note = (f"{machine_line()}, {date}. 8 virtual CPU devices share the machine's cores (times are total work, "
            f"not parallel speed-up) and other processes ran concurrently. Regenerate: "
            f"`python benchmarks/parallel.py --write`.")
    write_section("parallel", "Parallelism on 8 CPU devices: DP vs HDP, context-parallel attention",
                  f"{note}\n\n### Plain DP vs ByteScale HDP (long-tail lengths)\n\n{hdp_table}\n\n"
                  f"### Context-parallel attention\n\n{cp_table}\n")


if __name__ == "__main__":
  main()
