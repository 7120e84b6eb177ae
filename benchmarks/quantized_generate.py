"""Quantised weights and int8 KV on the bundled model: decode/prefill tok/s beside llama.cpp Q4_1, bytes read per
decode step against measured memory bandwidth, and greedy agreement / KL against fp32.

Engines (in one process, compiled first, then timed in interleaved rounds; llama.cpp runs as a subprocess each
round): `fp32`, `bf16` (params and compute), `q8_0`, `q4_1`, `gguf` (the file's Q4_1/Q8_0 tensors exactly as
shipped), each optionally `+int8kv` (int8 KV cache) and `+<method>` (a KV method at a 25% budget), and `llama.cpp`.

  .venv/bin/python benchmarks/quantized_generate.py speed [--contexts 1024] [--engines fp32,gguf,q8_0,...]
  .venv/bin/python benchmarks/quantized_generate.py agreement [--prompts 4] [--tokens 128] [--weights q8_0]
Add --write to record the table in benchmarks/RESULTS.md (sections quant_speed / quant_agreement).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.kv_methods import real_text_prompt  # noqa: E402
from benchmarks.results import machine_line, write_section  # noqa: E402

warnings.filterwarnings("ignore", message="Some donated buffers")


def memory_bandwidth_gbs(mb: int = 256, repeats: int = 5) -> float:
  """Best-of-`repeats` read+write bandwidth of a numpy copy of `mb` MB (GB/s counting bytes read + written)."""
  a = np.ones(mb * (1 << 20) // 8)
  b = np.empty_like(a)
  best = 0.0
  for _ in range(repeats):
    t0 = time.perf_counter()
    np.copyto(b, a)
    best = max(best, 2 * a.nbytes / (time.perf_counter() - t0) / 1e9)
  return best


def _engine(name: str, context: int):
  """(Generator, state, bytes read per decode step) of an engine name like `q8_0+int8kv+retrolm`."""
  from lcjax.checkpoint import load_pretrained
  from lcjax.inference import Generator
  from lcjax.inference.kv_method import MethodGenerator
  from lcjax.kvcache import make_method
  from lcjax.quant import weight_bytes

  weights, *opts = name.split("+")
  kw = {"dtype": "bfloat16"} if weights == "bf16" else {}
  model = load_pretrained("smollm2-135m", weights=weights, **kw)
  cache_dtype = "int8" if "int8kv" in opts else None
  methods = [o for o in opts if o != "int8kv"]
  gen = (MethodGenerator(model.cfg, model.graphdef, make_method(methods[0], budget=0.25), cache_dtype=cache_dtype)
         if methods else Generator(model.cfg, model.graphdef, cache_dtype=cache_dtype))
  cfg = model.cfg
  per_token = 2 * cfg.num_kv_heads * cfg.head_dim * (1 + 4 / cfg.head_dim if cache_dtype else
                                                      np.dtype(gen.cache_dtype).itemsize)
  kv_tokens = context * (0.25 if methods else 1.0)
  return gen, model.state, weight_bytes(model.state) + cfg.num_layers * kv_tokens * per_token


def speed(args):
  from lcjax.models.bundled import bundled_path
  from lcjax.peers import call_peer

  bw = memory_bandwidth_gbs()
  rows = []
  for ctx in [int(c) for c in args.contexts.split(",")]:
    prompt = np.random.default_rng(0).integers(100, 40000, ctx).tolist()
    engines = {}
    for name in args.engines.split(","):
      if name == "llama.cpp":
        engines[name] = None
        continue
      gen, state, step_bytes = _engine(name, ctx)
      gen.generate(state, [prompt], max_new_tokens=args.decode_tokens, stop_ids=[])  # compile
      engines[name] = (gen, state, step_bytes)
      print(f"  {name} compiled", flush=True)
    times = {n: [] for n in engines}
    for _ in range(args.rounds):
      for name, eng in engines.items():
        if eng is None:
          ans = call_peer("llamacpp_peer.py", {"op": "bench", "gguf": bundled_path(), "context": ctx,
                                               "decode_tokens": args.decode_tokens, "threads": os.cpu_count()},
                          threads=os.cpu_count())
          times[name].append((ans["prefill_tok_s"], ans["decode_tok_s"]))
        else:
          r = eng[0].generate(eng[1], [prompt], max_new_tokens=args.decode_tokens, stop_ids=[])
          times[name].append((r.prefill_tokens_per_second, r.decode_tokens_per_second))
        print(f"  {ctx} {name}: {times[name][-1][0]:.0f} / {times[name][-1][1]:.1f} tok/s", flush=True)
    for name, ts in times.items():
      pre, dec = np.array([t[0] for t in ts]), np.array([t[1] for t in ts])
      step_bytes = engines[name][2] if engines[name] else None
      roof = f"{step_bytes / 1e6:.0f} MB, {100 * step_bytes * np.median(dec) / (bw * 1e9 / 2):.0f}%" \
          if step_bytes else "-"
      rows.append(f"| {ctx} | {name} | {np.median(pre):.0f} ({pre.min():.0f}-{pre.max():.0f}) | "
                  f"{np.median(dec):.1f} ({dec.min():.1f}-{dec.max():.1f}) | {roof} |")
  table = "\n".join(["| context | engine | prefill tok/s median (min-max) | decode tok/s median (min-max) | "
                     "bytes read per decode step, % of copy bandwidth |", "|---:|---|---:|---:|---:|"] + rows)
  table += (f"\n\nMemory bandwidth (numpy copy, reads + writes): {bw:.1f} GB/s; the roofline column divides bytes "
            f"per step x decode tok/s by half of it (reads only).")
  print(table)
  if args.write:
    write_section("quant_speed", f"Quantised weights / int8 KV: generation speed ({machine_line()}, "
                  f"{datetime.date.today()}, {args.rounds} interleaved rounds, {args.decode_tokens} decode tokens)",
                  table + (f"\n\n{args.note}" if args.note else ""))


def agreement(args):
  import jax.numpy as jnp

  from lcjax.checkpoint import load_pretrained
  from lcjax.inference import Generator
  from lcjax.inference.kv_method import decode_scan, fidelity

  fp = load_pretrained("smollm2-135m")
  quant = {w: load_pretrained("smollm2-135m", weights=w) for w in args.weights.split(",")}
  text = real_text_prompt(fp.tokenizer, args.prompts * args.prompt_len)
  gen = Generator(fp.cfg, fp.graphdef, pad_to=64)
  rows = []
  for i in range(args.prompts):
    prompt = text[i * args.prompt_len:(i + 1) * args.prompt_len]
    max_len = args.prompt_len + args.tokens + 64
    logits, cache = gen.prefill(fp.state, [prompt], gen.init_cache(1, max_len))
    first = jnp.argmax(logits, -1).astype(jnp.int32)
    tokens, dense_logits, _ = decode_scan(fp.graphdef, fp.state, cache, args.tokens, first=first)
    for w, model in quant.items():
      _, qcache = gen.prefill(model.state, [prompt], gen.init_cache(1, max_len))
      _, q_logits, _ = decode_scan(model.graphdef, model.state, qcache, args.tokens, tokens=tokens)
      f = fidelity(dense_logits, q_logits, np.asarray(dense_logits).argmax(-1))
      rows.append((i, w, f))
      print(f"  prompt {i} {w}: agreement {f['agreement']:.3f} KL {f['kl']:.4f} (max {f['kl_max']:.3f})", flush=True)
  lines = ["| weights | prompt | greedy agreement with fp32 | KL(fp32 ‖ quantised) mean (max) |", "|---|---:|---:|---:|"]
  lines += [f"| {w} | {i} | {f['agreement']:.3f} | {f['kl']:.4f} ({f['kl_max']:.3f}) |" for i, w, f in rows]
  for w in quant:
    ag = [f["agreement"] for _, ww, f in rows if ww == w]
    kl = [f["kl"] for _, ww, f in rows if ww == w]
    lines.append(f"| **{w}** | all | **{np.mean(ag):.3f}** | **{np.mean(kl):.4f}** |")
  table = "\n".join(lines)
  print(table)
  if args.write:
    write_section("quant_agreement", f"Quantised weights: agreement with fp32, SmolLM2-135M ({datetime.date.today()}, "
                  f"{args.prompts} prompts of {args.prompt_len} tokens of the bundled essays, {args.tokens} greedy "
                  f"fp32 tokens, quantised model teacher-forced along them)", table)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("mode", choices=["speed", "agreement"])
  parser.add_argument("--contexts", default="1024")
  parser.add_argument("--engines", default="fp32,bf16,q8_0,gguf,fp32+int8kv,llama.cpp")
  parser.add_argument("--decode-tokens", type=int, default=32)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--prompts", type=int, default=4)
  parser.add_argument("--prompt-len", type=int, default=256)
  parser.add_argument("--tokens", type=int, default=128)
  parser.add_argument("--weights", default="q8_0,gguf")
  parser.add_argument("--write", action="store_true")
  parser.add_argument("--note", default="")
  args = parser.parse_args()
  (speed if args.mode == "speed" else agreement)(args)


if __name__ == "__main__":
  main()
