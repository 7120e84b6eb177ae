"""Decode tokens/s of the bundled model with its KV cache on device vs in a host tier, with and without prefetch.

  device          every layer's cache dense on the accelerator
  host            every layer streamed from pinned_host inside each step (the whole cache crosses the host link
                  every step; no prefetch)
  host+prefetch   every layer paged in pinned_host with a device working set; the next step's pages are fetched
                  before this step's compute (double buffering) and only pages not resident move (elastic loading)

The cache is filled with random K/V of the requested length (decode cost does not depend on the values, and a
32K prefill of the model on a 2-core CPU would take minutes). Positions past the model's trained 8K context are
fine for timing. Bytes moved per step are counted by the prefetcher (paged) or from the cache size (streamed) and
set against the copy bandwidth `lcjax.memory.measure` times here. `--method` takes the KV method whose page
selection drives the prefetcher: `dense` now; names from the KV-method registry once it exists.

  .venv/bin/python benchmarks/offload.py [--contexts 8192,16384,32768] [--method dense] [--write]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results import machine_line, write_section  # noqa: E402


def selection_for(method: str):
  """The page selection of a KV method: dense here; other names from the KV-method registry when it exists."""
  from lcjax.memory.kv_offload import dense_selection

  if method == "dense":
    return dense_selection
  try:
    from lcjax.kvcache import KV_METHODS  # the KV-method interface (issue 8)
  except ImportError:
    from lcjax.errors import UnknownNameError
    raise UnknownNameError(f"KV method {method!r} needs the KV-method registry (lcjax.kvcache.KV_METHODS), which "
                           f"this checkout does not have yet; available: dense") from None
  return KV_METHODS.get(method).page_selection  # the hook item 2's integration adds to every method


def random_cache(cfg, length: int, max_len: int, dtype) -> "KVCache":
  from lcjax.kvcache.dense import DenseLayerKV, KVCache

  key = jax.random.PRNGKey(0)
  shape = (1, cfg.num_kv_heads, max_len, cfg.head_dim)
  layers = []
  for i in range(cfg.num_layers):
    kk, kv = jax.random.split(jax.random.fold_in(key, i))
    layers.append(DenseLayerKV(jax.random.normal(kk, shape, dtype), jax.random.normal(kv, shape, dtype)))
  return KVCache(tuple(layers), jnp.full((1,), length, jnp.int32))


def time_mode(model, mode: str, context: int, args, select) -> tuple[float, float]:
  """(decode tokens/s, bytes moved per step) for one mode, from the difference of a short and a long run."""
  from lcjax.memory.kv_offload import PagedDecoder, to_streamed

  cfg, dtype = model.cfg, jnp.dtype(args.cache_dtype)
  max_len = context + args.page_size * 2
  dec = PagedDecoder(cfg, model.graphdef, tier="pinned_host", page_size=args.page_size,
                     num_slots=max_len // args.page_size + 1, select=select, overlap=(mode == "host+prefetch"))
  logits = jnp.zeros((1, cfg.vocab_size), jnp.float32)

  def run(steps):
    cache = random_cache(cfg, context, max_len, dtype)
    if mode == "host":
      cache = dataclasses.replace(cache, layers=tuple(to_streamed(l, "pinned_host") for l in cache.layers))
    paged = range(cfg.num_layers) if mode == "host+prefetch" else []
    jax.block_until_ready(cache)
    t0 = time.perf_counter()
    _, _, stats = dec.decode(model.state, logits, cache, steps, paged_layers=paged)
    return time.perf_counter() - t0, stats

  run(2)  # compile
  (t_short, _), (t_long, stats) = run(args.short_steps), run(args.long_steps)
  per_step = (t_long - t_short) / (args.long_steps - args.short_steps)
  if mode == "host":
    moved = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * context * dtype.itemsize
  elif mode == "host+prefetch":
    moved = float(np.mean([s.bytes_loaded + s.bytes_written_back for s in stats[1:]]))
  else:
    moved = 0.0
  return 1.0 / per_step, moved


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--contexts", default="8192,16384,32768")
  parser.add_argument("--method", default="dense")
  parser.add_argument("--modes", default="device,host,host+prefetch")
  parser.add_argument("--page-size", type=int, default=256)
  parser.add_argument("--cache-dtype", default="bfloat16")
  parser.add_argument("--short-steps", type=int, default=2)
  parser.add_argument("--long-steps", type=int, default=8)
  parser.add_argument("--write", action="store_true", help="record the table in benchmarks/RESULTS.md")
  args = parser.parse_args()
  from lcjax.checkpoint import load_pretrained
  from lcjax.memory.measure import measure

  select = selection_for(args.method)
  model = load_pretrained("smollm2-135m")
  bw = measure("pinned_host", nbytes=64 << 20).to_device_bw
  print(f"measured pinned_host -> device copy bandwidth: {bw / 1e9:.2f} GB/s", flush=True)
  rows = []
  for ctx in [int(c) for c in args.contexts.split(",")]:
    for mode in args.modes.split(","):
      tok_s, moved = time_mode(model, mode, ctx, args, select)
      copy_ms = moved / bw * 1e3
      rows.append((ctx, mode, tok_s, moved, copy_ms))
      print(f"{ctx:>6} {mode:<14} {tok_s:7.2f} tok/s  moved/step {moved / 1e6:9.2f} MB  "
            f"at measured bw {copy_ms:8.2f} ms", flush=True)
  table = ["| context | KV placement | decode tok/s | bytes moved / step | copy time at measured bw |",
           "|---:|---|---:|---:|---:|"]
  table += [f"| {c} | {m} | {t:.2f} | {b / 1e6:.1f} MB | {ms:.1f} ms |" for c, m, t, b, ms in rows]
  print("\n".join(table))
  if args.write:
    notes = (f"\nMethod `{args.method}`, batch 1, {args.cache_dtype} cache, pages of {args.page_size} tokens, "
             f"pinned_host tier; measured pinned_host->device copy bandwidth {bw / 1e9:.2f} GB/s. On the CPU "
             "backend device and host memory are the same RAM, so `host` costs the in-step copies XLA keeps and "
             "`host+prefetch` the paging bookkeeping; no accelerator link is measured. The machine was shared with "
             "other jobs while this ran: timings are noisy.")
    write_section("offload", f"Decode with the KV cache in a host tier, SmolLM2-135M ({machine_line()}, "
                  f"{datetime.date.today()})", "\n".join(table) + "\n" + notes)


if __name__ == "__main__":
  main()
