"""Speculative decoding on SmolLM2-135M-Instruct (fp32) at long contexts: decode tokens/s and mean accepted length
for plain decode, prompt lookup (chain and 3-branch tree), a small-model draft (the target's first layers as an
early-exit model: the only smaller model with this tokenizer available offline) and LongSpec (a draft trained by
experiments/longspec.py), outputs checked identical to plain greedy in the same run, beside llama.cpp's Q4_1 decode.

Tasks (text shipped in the repository): summary (a bundled essay + "Summarise the essay above."), qa (essays +
a question about them), code (this repository's Python source, continued raw). Engines run interleaved over
`--rounds` rounds (median, min-max).

  .venv/bin/python benchmarks/speculative.py [--contexts 2048,4096,8192] [--tasks summary,qa,code]
      [--new-tokens 64] [--gamma 4] [--longspec DIR] [--peers] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import glob
import os
import sys

import jax
import numpy as np
from flax import nnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.results import machine_line, write_section  # noqa: E402

QUESTION = "According to the essays above, what does the author think startups should focus on?"


def task_prompt(tok, task: str, context: int) -> list[int]:
  """A prompt of about `context` tokens for the task (chat template for summary / qa)."""
  from lcjax.assets import haystack_files, haystack_text

  if task == "code":
    files = sorted(glob.glob(os.path.join(ROOT, "lcjax", "**", "*.py"), recursive=True))
    text = "\n\n".join(open(f, encoding="utf-8").read() for f in files)
    return tok.encode(text)[:context]
  body = open(haystack_files()[0], encoding="utf-8").read() if task == "summary" else haystack_text()
  ask = "Summarise the essay above." if task == "summary" else QUESTION
  frame = len(tok.encode(tok.apply_chat_template([{"role": "user", "content": "\n\n" + ask}])))
  ids = tok.encode(body)
  while len(ids) < context:  # short essay: repeat it (the summary task then sees the essay twice)
    ids = ids + ids
  doc = tok.decode(ids[:context - frame - 8])
  return tok.encode(tok.apply_chat_template([{"role": "user", "content": doc + "\n\n" + ask}]))[:context]


def early_exit_model(pretrained, layers: int):
  """(cfg, graphdef, state) of the target's first `layers` layers + its final norm and head."""
  from lcjax.models.llama import Llama

  cfg = pretrained.cfg.replace(num_layers=layers)
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: Llama(cfg, key=jax.random.PRNGKey(0))))
  pure = nnx.to_pure_dict(pretrained.state)
  pure["layers"] = {i: pure["layers"][i] for i in range(layers)}
  nnx.replace_by_pure_dict(abstract, pure)
  return cfg, graphdef, abstract


def engines(pretrained, gamma: int, small_layers: int, longspec_dir: str | None):
  """name -> generate(prompt, new_tokens) -> (tokens, decode seconds, mean accepted)."""
  from lcjax.inference import Generator
  from lcjax.inference.drafters import ModelDrafter, PromptLookup, drafter_from_spec
  from lcjax.inference.speculative import SpeculativeGenerator

  gen = Generator(pretrained.cfg, pretrained.graphdef)
  scfg, sgraph, sstate = early_exit_model(pretrained, small_layers)
  spec = {"prompt lookup chain": (PromptLookup(gamma), None),
          "prompt lookup tree (3 branches)": (PromptLookup(gamma, branches=3), None),
          f"small model ({small_layers}-layer early exit)": (ModelDrafter(scfg, sgraph, gamma), sstate)}
  if longspec_dir:
    spec["LongSpec chain"] = drafter_from_spec(f"longspec:{longspec_dir}", gamma, pretrained)
    spec["LongSpec tree [4, 4, 4, 4]"] = drafter_from_spec(f"longspec:{longspec_dir}", gamma, pretrained, (4, 4, 4, 4))

  def plain(prompt, new):
    r = gen.generate(pretrained.state, [prompt], max_new_tokens=new, stop_ids=[])
    return r.tokens[0], r.decode_seconds, 1.0

  out = {"plain decode": plain}
  for name, (drafter, params) in spec.items():
    sg = SpeculativeGenerator(gen, drafter)

    def run(prompt, new, sg=sg, params=params):
      r = sg.generate(pretrained.state, [prompt], draft_params=params, max_new_tokens=new, stop_ids=[])
      return r.tokens[0], r.decode_seconds, r.mean_accepted

    out[name] = run
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--contexts", default="2048,4096,8192")
  parser.add_argument("--tasks", default="summary,qa,code")
  parser.add_argument("--new-tokens", type=int, default=64)
  parser.add_argument("--gamma", type=int, default=4)
  parser.add_argument("--small-layers", type=int, default=6)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--longspec", default=None, help="a LongSpec draft directory (experiments/longspec.py)")
  parser.add_argument("--peers", action="store_true", help="also time llama.cpp Q4_1 decode")
  parser.add_argument("--write", action="store_true")
  parser.add_argument("--note", default="")
  args = parser.parse_args()
  from lcjax.checkpoint import load_pretrained

  pretrained = load_pretrained("smollm2-135m")
  runs = engines(pretrained, args.gamma, args.small_layers, args.longspec)
  rows = []
  for ctx in [int(c) for c in args.contexts.split(",")]:
    for task in args.tasks.split(","):
      prompt = task_prompt(pretrained.tokenizer, task, ctx)
      ref = runs["plain decode"](prompt, args.new_tokens)[0]           # also compiles
      for fn in list(runs.values())[1:]:
        fn(prompt, args.new_tokens)                                     # compile
      speed = {n: [] for n in runs}
      acc, same = {}, {}
      for _ in range(args.rounds):
        for name, fn in runs.items():
          tokens, secs, accepted = fn(prompt, args.new_tokens)
          speed[name].append(len(tokens) / secs)
          acc[name], same[name] = accepted, same.get(name, True) and tokens == ref
      base = float(np.median(speed["plain decode"]))
      for name in runs:
        s = np.asarray(speed[name])
        rows.append((ctx, task, name, np.median(s), s.min(), s.max(), np.median(s) / base, acc[name], same[name]))
        print(rows[-1], flush=True)
    if args.peers:
      from benchmarks.generate import bench_peer

      ans = bench_peer("llamacpp_peer.py", ctx, args.new_tokens, os.cpu_count() or 1)
      if ans:
        v = ans["decode_tok_s"]
        rows.append((ctx, "random tokens", "llama.cpp Q4_1 dense decode", v, v, v, v / base, float("nan"), None))
        print(rows[-1], flush=True)
  table = ["| context | task | engine | decode tok/s median (min-max) | vs plain lcjax | mean accepted | identical "
           "to greedy |", "|---:|---|---|---:|---:|---:|---|"]
  for c, t, n, med, lo, hi, ratio, a, same in rows:
    acc = "-" if a != a else f"{a:.2f}"
    table.append(f"| {c} | {t} | {n} | {med:.1f} ({lo:.1f}-{hi:.1f}) | {ratio:.2f}x | {acc} | "
                 f"{'-' if same is None else ('yes' if same else 'NO')} |")
  print("\n".join(table))
  if args.write:
    write_section("speculative", f"Speculative decoding, SmolLM2-135M-Instruct fp32 ({machine_line()}, "
                  f"{datetime.date.today()}, {args.new_tokens} new tokens, gamma {args.gamma}, batch 1, "
                  f"{args.rounds} interleaved rounds)", "\n".join(table) + (f"\n\n{args.note}" if args.note else ""))


if __name__ == "__main__":
  main()
