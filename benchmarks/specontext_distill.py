"""Distils SpeContext's retrieval model from the bundled SmolLM2-135M: its first `--layers` layers (`truncated`)
trained with KD + attention alignment (`lcjax.kvcache.specontext_distill`) on the bundled essays, for a wall-clock
budget. Held-out essays (never trained on) give the calibration rows (retrieval heads chosen by `calibrate_heads`)
and the evaluation rows: recall of the big model's top-`--budget` layer-averaged attention by the small model's
retrieval heads, before and after. The trained model is exported like `lcjax.training.loop.export_model`
(`<out>/model/{params, model_config.json}`; `load_trained(out)` reads it; `benchmarks/kv_methods.py
--specontext-model <out>` runs SpeContext with it); `<out>/results.json` holds the numbers and the loss history.

  .venv/bin/python benchmarks/specontext_distill.py [--layers 4] [--seq 512] [--eval-seq 1024] [--minutes 10]
      [--lr 3e-4] [--kd-weight 0.2] [--out workdir/specontext_smollm2_4l]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def essay_rows(tokenizer, held_out: int, seq: int, eval_seq: int):
  """(train rows [M, seq], held-out rows [R, eval_seq]) of token ids: the last `held_out` essays are held out."""
  from lcjax.assets import haystack_files

  def rows(paths, n):
    ids = []
    for path in paths:
      with open(path, encoding="utf-8") as f:
        ids += tokenizer.encode(f.read().strip())
    return np.asarray(ids[:len(ids) // n * n], np.int32).reshape(-1, n)

  files = haystack_files()
  return rows(files[:-held_out], seq), rows(files[-held_out:], eval_seq)


def distil(big, train_rows, held_rows, args) -> dict:
  """Recall before, distillation for args.minutes, recall after, export. Returns the results dict."""
  from lcjax.kvcache import specontext_distill as sd
  from lcjax.kvcache.specontext import truncated
  from lcjax.training.config import OptimizerConfig
  from lcjax.training.loop import export_model, load_trained

  calib, evals = held_rows[:args.calib_rows], held_rows[args.calib_rows:args.calib_rows + args.eval_rows]
  small = truncated(big[0], big[2], args.layers)
  t0 = time.perf_counter()
  at = sd.evaluation_positions(held_rows.shape[1], args.queries)
  c_target, e_target = (sd.attention_probs(big, x, at, mean=True) for x in (calib, evals))

  def recall(model, heads=None):  # (heads calibrated on `calib`, recall of the big model's top-k on `evals`)
    heads = heads or sd.calibrate_on_probs(c_target, sd.attention_probs(model, calib, at), args.budget, args.keep)
    return heads, sd.retrieval_recall(e_target, sd.attention_probs(model, evals, at), heads, args.budget)

  heads0, recall0 = recall(small)
  print(f"before: heads {heads0} recall@{args.budget} {recall0:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
  order = np.random.default_rng(args.seed).permutation(len(train_rows))
  batches = [train_rows[order[i:i + args.batch]] for i in range(0, len(order) - args.batch + 1, args.batch)]
  opt = OptimizerConfig(lr=args.lr, schedule="constant", warmup_steps=5)
  curve = []

  def log(i, r, params):
    print(f"step {i}: loss {r['loss']:.4f} kd {r['kd']:.4f} attn {r['attn']:.4f} {r['secs']:.1f} s", flush=True)
    if args.eval_every and i % args.eval_every == 0:
      curve.append({"step": i, "recall": recall((small[0], small[1], params))[1]})
      print(f"step {i}: held-out recall@{args.budget} {curve[-1]['recall']:.3f}", flush=True)

  params, history = sd.distill_retrieval_model(big, small, batches, steps=len(batches), optimizer=opt,
                                               temperature=args.temperature, kd_weight=args.kd_weight,
                                               attn_weight=1.0, queries=args.train_queries,
                                               time_limit_s=args.minutes * 60, seed=args.seed, log=log)
  trained = (small[0], small[1], params)
  heads1, recall1 = recall(trained)
  _, recall_old_heads = recall(trained, heads0)
  print(f"after: heads {heads1} recall@{args.budget} {recall1:.3f} (the old heads: {recall_old_heads:.3f})",
        flush=True)
  export_model(args.out, small[0], params)
  loaded = load_trained(args.out)[2]
  same = all(np.array_equal(a, b) for a, b in zip(_leaves(params), _leaves(loaded)))
  results = {"layers": args.layers, "seq": int(train_rows.shape[1]), "eval_seq": int(held_rows.shape[1]),
             "budget": args.budget, "keep": args.keep, "recall_before": recall0, "recall_after": recall1,
             "recall_after_old_heads": recall_old_heads, "heads_before": heads0, "heads_after": heads1,
             "steps": len(history), "secs_per_step": float(np.median([h["secs"] for h in history[1:]] or [0])),
             "first_step_secs": history[0]["secs"] if history else 0.0, "export_roundtrip_equal": same,
             "recall_curve": curve, "args": vars(args), "history": history}
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  return results


def summary(r: dict) -> str:
  """A markdown table of a run's results."""
  h = r["history"]
  curve = ", ".join(f"{c['step']}: {c['recall']:.3f}" for c in r["recall_curve"]) or "-"
  rows = [("recall before (truncated, heads calibrated)", f"{r['recall_before']:.3f} {r['heads_before']}"),
          ("recall after (heads recalibrated)", f"{r['recall_after']:.3f} {r['heads_after']}"),
          ("recall after, the old heads", f"{r['recall_after_old_heads']:.3f}"),
          ("held-out recall by step", curve),
          ("steps; s/step (median); first step incl. compile", f"{r['steps']}; {r['secs_per_step']:.2f}; "
                                                                 f"{r['first_step_secs']:.1f}"),
          ("loss / kd / attn: first -> last", f"{h[0]['loss']:.3f} / {h[0]['kd']:.3f} / {h[0]['attn']:.3f} -> "
                                              f"{h[-1]['loss']:.3f} / {h[-1]['kd']:.3f} / {h[-1]['attn']:.3f}")]
  return "\n".join(["| quantity | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


def _leaves(state):
  import jax
  from flax import nnx

  return [np.asarray(x) for x in jax.tree.leaves(nnx.to_pure_dict(state))]


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--layers", type=int, default=4)
  parser.add_argument("--seq", type=int, default=512, help="training sequence length")
  parser.add_argument("--eval-seq", type=int, default=1024, help="held-out calibration/evaluation length")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--minutes", type=float, default=10.0, help="training wall-clock budget")
  parser.add_argument("--lr", type=float, default=3e-4)
  parser.add_argument("--temperature", type=float, default=2.0)
  parser.add_argument("--kd-weight", type=float, default=0.2)
  parser.add_argument("--train-queries", type=int, default=32, help="query positions per training step")
  parser.add_argument("--queries", type=int, default=16, help="query positions per held-out row")
  parser.add_argument("--budget", type=int, default=64, help="top-k of the recall and the calibration")
  parser.add_argument("--keep", type=int, default=4, help="retrieval heads kept")
  parser.add_argument("--held-out", type=int, default=5, help="essays held out")
  parser.add_argument("--calib-rows", type=int, default=2)
  parser.add_argument("--eval-rows", type=int, default=4)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--eval-every", type=int, default=20, help="held-out recall every N steps (0: off)")
  parser.add_argument("--out", default="workdir/specontext_smollm2_4l")
  parser.add_argument("--write", action="store_true", help="record the table in benchmarks/RESULTS.md")
  args = parser.parse_args()
  if os.path.exists(os.path.join(args.out, "model", "params")):
    raise SystemExit(f"{args.out}/model/params exists; choose another --out")
  from lcjax.checkpoint import load_pretrained

  model = load_pretrained("smollm2-135m")
  train_rows, held_rows = essay_rows(model.tokenizer, args.held_out, args.seq, args.eval_seq)
  print(f"{len(train_rows)} training rows of {args.seq}, {len(held_rows)} held-out rows of {args.eval_seq}", flush=True)
  if len(held_rows) < args.calib_rows + args.eval_rows:
    raise SystemExit(f"only {len(held_rows)} held-out rows; need {args.calib_rows + args.eval_rows}")
  results = distil((model.cfg, model.graphdef, model.state), train_rows, held_rows, args)
  print(json.dumps({k: v for k, v in results.items() if k not in ("history", "args")}))
  text = summary(results)
  print(text)
  if args.write:
    import datetime

    from benchmarks.results import machine_line, write_section

    write_section("specontext_distill", f"SpeContext retrieval model distilled from SmolLM2-135M ({args.layers} "
                  f"layers; {machine_line()}, {datetime.date.today()}; train rows {results['seq']} tokens, held-out "
                  f"essays at {results['eval_seq']}, recall@{args.budget} of the big model's layer-averaged "
                  f"attention by {args.keep} retrieval heads)", text)


if __name__ == "__main__":
  main()
