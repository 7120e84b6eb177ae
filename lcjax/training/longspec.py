"""Training LongSpec's draft (arXiv 2502.17421) against a frozen target, and the experiment driver.

  train_longspec(target, draft, tokens, ...) -> (draft state, history)
  run_longspec(spec, workdir) -> summary            (experiments/longspec.py)

Each step: a random window of `seq_len` tokens per row with Anchor-Offset position ids
(`models.longspec.anchor_offset_positions`), the frozen target's last-layer K/V of it (`last_layer_kv`, jitted
apart: no gradient), a lag pad ~ U{1..4} per row (query t sees target keys <= t - pad), and next-token CE through
the target's frozen LM head; only the draft's params are updated (`lcjax.training.state.make_step`, AdamW).
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.config import MeshConfig
from lcjax.errors import ConfigError
from lcjax.models.longspec import anchor_offset_positions, last_layer_kv
from lcjax.training.config import OptimizerConfig
from lcjax.training.losses import next_token_loss


def longspec_loss(draft_graphdef, target_graphdef):
  """`loss(params, batch) -> (loss, aux)`; batch: tokens, positions [B, T + 1], target_k/v [B, T, K, H], pad [B],
  target (the frozen target state: embedding and head)."""

  def loss(params, batch):
    draft = nnx.merge(draft_graphdef, params)
    target = nnx.merge(target_graphdef, batch["target"])
    tokens, positions = batch["tokens"], batch["positions"]
    logits = draft.train_logits(target, tokens[:, :-1], positions[:, :-1], batch["target_k"], batch["target_v"],
                                batch["pad"])
    return next_token_loss(logits, tokens[:, 1:])

  return loss


def teacher_kv(target_graphdef):
  """Jitted `(target state, tokens [B, T], positions [B, T]) -> last-layer (k, v) [B, T, K, H]`."""
  return jax.jit(lambda state, tokens, positions: last_layer_kv(nnx.merge(target_graphdef, state), tokens,
                                                                positions))


def sample_batch(stream: np.ndarray, batch: int, seq_len: int, max_len: int, rng: np.random.Generator,
                 max_pad: int = 4) -> dict:
  """Random windows of seq_len + 1 tokens with Anchor-Offset positions and lag pads U{1..max_pad}."""
  if len(stream) < seq_len + 2:
    raise ConfigError(f"training text of {len(stream)} tokens is shorter than seq_len + 2 = {seq_len + 2}")
  starts = rng.integers(0, len(stream) - seq_len - 1, size=batch)
  tokens = np.stack([stream[s:s + seq_len + 1] for s in starts]).astype(np.int32)
  positions = np.stack([anchor_offset_positions(seq_len + 1, max_len, rng) for _ in range(batch)])
  return {"tokens": tokens, "positions": positions, "pad": rng.integers(1, max_pad + 1, size=batch).astype(np.int32)}


def train_longspec(target, draft, stream, *, steps: int, seq_len: int = 256, batch: int = 1, lr: float = 5e-4,
                   max_len: int = 32768, seed: int = 0, log=None):
  """Trains the draft on token windows of `stream` (1-D int array).

  Args:
    target: (cfg, graphdef, state) frozen.  draft: (graphdef, state) of a `LongSpecDraft`.
    steps, seq_len, batch, lr: the schedule (AdamW, 10% warmup, cosine).  max_len: the Anchor-Offset max_len.
    log: optional callable(step, metrics dict).
  Returns:
    (trained draft state, history: list of {"step", "loss", "accuracy", "secs"}).
  """
  from lcjax.kvcache.specontext_distill import _train_state
  from lcjax.sharding.mesh import mesh_and_rules
  from lcjax.sharding.steps import replicated
  from lcjax.training.optimizers import make_optimizer
  from lcjax.training.state import make_step

  _, tgraph, tstate = target
  dgraph, dstate = draft
  opt, schedule = make_optimizer(OptimizerConfig(lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.0), steps)
  mesh, rules = mesh_and_rules(MeshConfig(), jax.devices()[:1])
  state, shardings = _train_state(dstate, opt, mesh, rules)
  step_fn = make_step(longspec_loss(dgraph, tgraph), opt, schedule, mesh, rules, shardings, replicated(mesh))
  teacher = teacher_kv(tgraph)
  rng = np.random.default_rng(seed)
  history = []
  for i in range(steps):
    t0 = time.perf_counter()
    b = {k: jnp.asarray(v) for k, v in sample_batch(np.asarray(stream), batch, seq_len, max_len, rng).items()}
    k, v = teacher(tstate, b["tokens"][:, :-1], b["positions"][:, :-1])
    state, metrics = step_fn(state, {**b, "target_k": k, "target_v": v, "target": tstate})
    row = {key: float(val) for key, val in jax.device_get(metrics).items() if key in ("loss", "accuracy")}
    history.append({"step": i + 1, **row, "secs": time.perf_counter() - t0})
    if log is not None:
      log(i + 1, history[-1])
  return state.params, history


def acceptance_run(pretrained, drafter, draft_params, prompt, new_tokens: int) -> dict:
  """Greedy speculative decoding of one prompt: {"identical": == plain greedy, "mean_accepted", "depth_accept"}."""
  from lcjax.inference import Generator
  from lcjax.inference.speculative import SpeculativeGenerator

  gen = Generator(pretrained.cfg, pretrained.graphdef)
  plain = gen.generate(pretrained.state, [prompt], max_new_tokens=new_tokens, stop_ids=[])
  spec = SpeculativeGenerator(gen, drafter).generate(pretrained.state, [prompt], draft_params=draft_params,
                                                      max_new_tokens=new_tokens, stop_ids=[])
  return {"identical": spec.tokens == plain.tokens, "mean_accepted": spec.mean_accepted,
          "depth_accept": spec.depth_accept, "steps": spec.decode_steps}


def run_longspec(spec: dict, workdir: str) -> dict:
  """The LongSpec experiment: a random-init draft's acceptance on a held-out essay, Anchor-Offset training on the
  other bundled essays, the trained draft's acceptance (outputs checked identical to greedy both times), the
  checkpoint in workdir/draft and the summary in workdir/longspec.json."""
  from lcjax.assets import haystack_files
  from lcjax.checkpoint import load_pretrained
  from lcjax.inference.drafters import LongSpecDrafter, PromptLookup
  from lcjax.models.longspec import LongSpecDraft, save_draft

  pretrained = load_pretrained(spec["model"])
  tok, cfg = pretrained.tokenizer, pretrained.cfg
  files = haystack_files()
  held_out = files[int(spec["eval_file"]) % len(files)]
  texts = [open(f, encoding="utf-8").read() for f in files if f != held_out]
  stream = np.asarray(tok.encode("\n\n".join(texts)), np.int32)
  prompt = tok.encode(open(held_out, encoding="utf-8").read())[:int(spec["prompt_len"])]
  gamma, window, new = int(spec["gamma"]), int(spec["window"]), int(spec["new_tokens"])
  dgraph, dstate = nnx.split(LongSpecDraft(cfg, window=window, key=jax.random.PRNGKey(int(spec["seed"]))))
  drafter = LongSpecDrafter(cfg, pretrained.graphdef, dgraph, window, gamma)
  summary = {"untrained": acceptance_run(pretrained, drafter, {"draft": dstate, "target": pretrained.state},
                                         prompt, new),
             "prompt_lookup": acceptance_run(pretrained, PromptLookup(gamma), None, prompt, new)}
  trained, history = train_longspec((cfg, pretrained.graphdef, pretrained.state), (dgraph, dstate), stream,
                                    steps=int(spec["steps"]), seq_len=int(spec["seq_len"]),
                                    batch=int(spec["batch"]), lr=float(spec["lr"]), max_len=int(spec["max_len"]),
                                    seed=int(spec["seed"]))
  save_draft(os.path.join(workdir, "draft"), trained, window)
  summary["trained"] = acceptance_run(pretrained, drafter, {"draft": trained, "target": pretrained.state}, prompt,
                                      new)
  summary["train"] = {"first_loss": history[0]["loss"], "last_loss": float(np.mean([h["loss"] for h in
                                                                                     history[-10:]])),
                      "steps": len(history), "seconds": float(sum(h["secs"] for h in history))}
  summary["config"] = dict(spec)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "longspec.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return summary
