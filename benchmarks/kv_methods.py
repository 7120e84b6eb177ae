"""KV methods on the bundled SmolLM2-135M: decode tokens/s, KV bytes read per step, and fidelity vs dense
(KL(dense || method) of next-token distributions, greedy agreement over the dense continuation), side by side with
dense lcjax, HF transformers and llama.cpp decode in the same run.

Per context: one prefill of real text (bundled Paul Graham essays) with query statistics collected; dense decodes
`--tokens` greedy tokens (its logits and tokens are the reference); every method at every budget is re-wrapped over
the same prefilled cache and teacher-forced along the dense tokens (same prefixes, so the KL compares like with
like; agreement = the method's argmax equals the dense token). Decode tok/s is the forced scan's steps per second
(compilation excluded), the same work as greedy decode.

Contexts past the model's trained length (SmolLM2: 8192) run with RoPE scaling (`--rope yarn`, factor
context / trained). `--tier pinned_host` keeps every method's KV in a host memory kind: decode steps gather only
the selected rows on the host (SpeContext: an elastic device working set loading the selection's difference);
the "H2D MB/step" column is what crosses the host link per step in that layout (dense: the whole cache, streamed).

  .venv/bin/python benchmarks/kv_methods.py [--contexts 4096,8192] [--budgets 0.25,0.125] [--tokens 128]
      [--methods all] [--rope yarn] [--tier pinned_host] [--peers] [--peer-contexts 8192] [--write]
      [--plot benchmarks/kv_methods.png] [--specontext-model workdir/specontext_smollm2_4l]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results import machine_line, write_section  # noqa: E402

warnings.filterwarnings("ignore", message="Some donated buffers")
METHOD_OPTIONS = {"specontext": {"local": 32}}


def real_text_prompt(tokenizer, n: int) -> list[int]:
  """The first n tokens of the bundled essays (real English text)."""
  from lcjax.assets import haystack_text

  ids = tokenizer.encode(haystack_text()[:n * 8])
  if len(ids) < n:
    raise SystemExit(f"the bundled text has only {len(ids)} tokens, fewer than {n}")
  return ids[:n]


def kv_bytes_per_step(cache, spec_dtype_bytes: int = 4) -> tuple[float, float, float]:
  """(selected KV bytes, index bytes, host-tier gather bytes) of one decode step, summed over layers, from each
  layer's selection for a random query (how many keys a method reads does not depend on which). The gather moves
  the selection's whole padded M*C rows per head."""
  import jax
  import jax.numpy as jnp

  kv, index, gather = 0.0, 0.0, 0.0
  q = jax.random.normal(jax.random.PRNGKey(0), (1, 1, cache.layers[0].spec.num_heads, cache.layers[0].spec.head_dim))
  for layer in cache.layers:
    spec = layer.spec
    if type(layer.method).__name__ == "SpeContext":
      tokens = min(spec.budget, int(cache.lengths[0])) * spec.num_kv_heads
    else:
      sel = layer.method.select(spec, layer.index, q, layer.k, cache.lengths)
      per_head = jnp.minimum(sel.counts * sel.block_size, cache.lengths[:, None])
      tokens = float(per_head.sum()) * spec.num_kv_heads / sel.counts.shape[1]
      gather += sel.indices.size * sel.block_size * 2 * spec.head_dim * spec_dtype_bytes
    kv += tokens * 2 * spec.head_dim * spec_dtype_bytes
    index += sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(layer.index)
                 if x.ndim >= 3 and x.shape[-1] != spec.budget)
  return kv, index, gather


def run_context(model, context: int, budgets, methods, steps: int, tier: str = "",
                specontext_model: str = "") -> list[dict]:
  import jax.numpy as jnp

  from lcjax.inference.kv_method import MethodGenerator, decode_scan, fidelity
  from lcjax.kvcache import make_method
  from lcjax.kvcache.base import rewrap
  from lcjax.kvcache.dense import DenseLayerKV, KVCache
  from lcjax.kvcache.specontext import SpeContextRunner
  from lcjax.memory.method_offload import to_elastic, to_host_method_cache

  cfg, graphdef, state = model.cfg, model.graphdef, model.state
  prompt = real_text_prompt(model.tokenizer, context)
  max_len = -(-(context + steps) // 64) * 64
  gen = MethodGenerator(cfg, graphdef, make_method("a2ats", budget="all"), prefill_chunk=1024)
  gen.context = context
  t0 = time.perf_counter()
  first, base = gen.prefill(state, [prompt], gen.init_cache(1, max_len))
  print(f"[{context}] prefill {time.perf_counter() - t0:.1f} s", flush=True)
  # the reference: the plain dense cache (ops.decode over every key, no selection), same jitted scan
  plain = KVCache(tuple(DenseLayerKV(jnp.copy(l.k), jnp.copy(l.v)) for l in base.layers), jnp.copy(base.lengths))
  first_token = jnp.argmax(first, -1).astype(jnp.int32)
  dense_tokens, dense_logits, secs = decode_scan(graphdef, state, plain, steps, first=first_token, timed=True)
  kv = cfg.num_layers * context * cfg.num_kv_heads * 2 * cfg.head_dim * 4  # every key and value, fp32
  rows = [{"context": context, "method": "dense (lcjax)", "budget": "all", "tok_s": steps / secs, "kv_mb": kv / 1e6,
           "index_mb": 0.0, "h2d_mb": kv / 1e6, "kl": 0.0, "agreement": 1.0}]
  print(rows[-1], flush=True)
  runner = None
  for name in methods:
    for budget in budgets:
      method = make_method(name, budget=budget, **METHOD_OPTIONS.get(name, {}))
      t0 = time.perf_counter()
      cache = rewrap(base, cfg, method, context)
      kv, idx, h2d = kv_bytes_per_step(cache)
      if tier:
        cache = (to_elastic if name == "specontext" else to_host_method_cache)(cache, tier)
      if name == "specontext":
        if runner is None:
          runner = SpeContextRunner(cfg, graphdef, state, method, small=_retrieval_model(specontext_model, cfg),
                                    calib_prompt=real_text_prompt(model.tokenizer, 512))
        runner = dataclasses.replace(runner, method=method)
        logits, moved, loaded, secs = _specontext_forced(runner, cache, dense_tokens, max_len, prompt)
        small = runner.small[0]
        idx = small.num_layers * context * small.num_kv_heads * small.head_dim * 4  # retrieval model's keys
        layer = cache.layers[0].spec
        h2d = float(np.mean(loaded[1:])) * cfg.num_layers * layer.num_kv_heads * 2 * layer.head_dim * 4
        extra = {"moved_tokens_per_step": float(np.mean(moved[1:])), "loaded_rows_per_step": float(np.mean(loaded[1:])),
                 "heads": runner.heads}
      else:
        _, logits, secs = decode_scan(graphdef, state, cache, steps, tokens=dense_tokens, timed=True)
        extra = {}
      fid = fidelity(dense_logits, logits, dense_logits.argmax(-1))
      rows.append({"context": context, "method": name, "budget": budget, "tok_s": steps / secs, "kv_mb": kv / 1e6,
                   "index_mb": idx / 1e6, "h2d_mb": h2d / 1e6, "kl": fid["kl"], "agreement": fid["agreement"],
                   "tier": tier or "device",
                   "setup_s": time.perf_counter() - t0 - secs, **extra})
      print(rows[-1], flush=True)
  return rows


def _retrieval_model(directory: str, cfg):
  """SpeContext's small model exported to `directory` (benchmarks/specontext_distill.py), with the big model's RoPE
  and window; None (the big model's first layers, `truncated`) when no directory is given."""
  if not directory:
    return None
  from lcjax.training.loop import load_trained

  return load_trained(directory, rope=cfg.rope, max_seq_len=cfg.max_seq_len)


def _specontext_forced(runner, cache, tokens, max_len, prompt):
  """Teacher-forced SpeContext decode timed without compilation (the retrieval model's step included)."""
  import jax

  from lcjax.kvcache import specontext as sc

  _, small_cache = sc.probe_prefill(*runner.small, prompt, max_len)
  tokens = jax.numpy.asarray(tokens, jax.numpy.int32)
  args = (runner.graphdef, runner.small[1], tuple(runner.heads), tokens.shape[1], runner.state, runner.small[2],
          tokens[:, 0], tokens, cache, small_cache)
  compiled = sc._decode_spec.lower(*args).compile()
  t0 = time.perf_counter()
  _, logits, moved, loaded = compiled(*args[4:])
  logits.block_until_ready()
  return np.asarray(logits), np.asarray(moved), np.asarray(loaded), time.perf_counter() - t0


def peers(contexts, steps):
  from benchmarks.generate import bench_peer

  threads = os.cpu_count() or 1
  rows = []
  for ctx in contexts:
    for label, script, key in (("HF transformers fp32", "hf_peer.py", "decode_tok_s"),
                               ("llama.cpp Q4_1", "llamacpp_peer.py", "decode_tok_s")):
      ans = bench_peer(script, ctx, min(steps, 32), threads)
      if ans:
        rows.append({"context": ctx, "method": label, "budget": "all", "tok_s": ans[key], "kv_mb": float("nan"),
                     "index_mb": float("nan"), "h2d_mb": float("nan"), "kl": float("nan"),
                     "agreement": float("nan")})
        print(rows[-1], flush=True)
  return rows


def table(rows) -> str:
  out = ["| context | method | budget | decode tok/s | KV MB read/step | index MB/step | H2D MB/step (host tier) | "
         "KL(dense‖method) nats | greedy agreement |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    f = lambda x, fmt: "-" if x != x else format(x, fmt)  # noqa: E731  (NaN -> "-")
    out.append(f"| {r['context']} | {r['method']} | {r['budget']} | {r['tok_s']:.1f} | {f(r['kv_mb'], '.1f')} | "
               f"{f(r['index_mb'], '.2f')} | {f(r['h2d_mb'], '.1f')} | {f(r['kl'], '.4f')} | "
               f"{f(r['agreement'], '.3f')} |")
  return "\n".join(out)


def plot(rows, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.5))
  for r in rows:
    if r["agreement"] != r["agreement"]:
      ax.axvline(r["tok_s"], ls=":", color="gray")
      ax.text(r["tok_s"], 0.02, f"{r['method']} {r['context']}", rotation=90, fontsize=7, color="gray")
      continue
    ax.scatter(r["tok_s"], r["agreement"], marker="o" if r["context"] <= 4096 else "s")
    ax.annotate(f"{r['method']} {r['budget']} @{round(r['context'] / 1024)}K", (r["tok_s"], r["agreement"]), fontsize=6)
  ax.set_xlabel("decode tokens/s (2-core CPU)")
  ax.set_ylabel("greedy agreement with dense")
  ax.set_title("KV methods on SmolLM2-135M: speed vs fidelity")
  fig.tight_layout()
  fig.savefig(path, dpi=130)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--contexts", default="4096,8064")
  parser.add_argument("--budgets", default="0.25,0.125")
  parser.add_argument("--tokens", type=int, default=128)
  parser.add_argument("--methods", default="all")
  parser.add_argument("--rope", default="yarn", help="RoPE scaling for contexts past the trained length")
  parser.add_argument("--tier", default="", help="host tier for the methods' KV (pinned_host, unpinned_host)")
  parser.add_argument("--peers", action="store_true", help="also time HF transformers and llama.cpp decode")
  parser.add_argument("--peer-contexts", default="", help="contexts for the peers (default: all)")
  parser.add_argument("--write", action="store_true", help="record the table in benchmarks/RESULTS.md")
  parser.add_argument("--plot", default="")
  parser.add_argument("--note", default="")
  parser.add_argument("--specontext-model", default="", help="SpeContext's retrieval model: a directory exported by "
                      "benchmarks/specontext_distill.py (default: the big model's first 4 layers, undistilled)")
  args = parser.parse_args()
  from lcjax.checkpoint import load_pretrained
  from lcjax.kvcache import KV_METHODS

  methods = [m for m in KV_METHODS.names() if m not in ("dense", "sink_kv")] if args.methods == "all" else \
      args.methods.split(",")
  contexts = [int(c) for c in args.contexts.split(",")]
  budgets = [float(b) for b in args.budgets.split(",")]
  model = load_pretrained("smollm2-135m")
  trained = model.cfg.max_seq_len
  rows = []
  for ctx in contexts:
    if ctx + args.tokens > trained:  # RoPE scaling by context / trained, the window raised to fit
      factor = -(-(ctx + args.tokens) // trained)
      model = load_pretrained("smollm2-135m", rope_overrides={"scaling": args.rope, "factor": float(factor),
                                                              "original_context": trained},
                              max_seq_len=trained * factor)
      print(f"[{ctx}] RoPE {args.rope} x{factor}", flush=True)
    rows += run_context(model, ctx, budgets, methods, args.tokens, args.tier, args.specontext_model)
  if args.peers:
    rows += peers([int(c) for c in args.peer_contexts.split(",")] if args.peer_contexts else contexts, args.tokens)
  text = table(rows)
  print(text)
  if args.plot:
    plot(rows, args.plot)
  if args.write:
    write_section("kv_methods", f"KV methods, SmolLM2-135M-Instruct fp32 ({machine_line()}, {datetime.date.today()}, "
                  f"{args.tokens} decode tokens, batch 1)", text + (f"\n\n{args.note}" if args.note else ""))


if __name__ == "__main__":
  main()
