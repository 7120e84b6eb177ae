"""Format-only SFT warm start of an RL policy: next-token training on (prompt, random-answer response) pairs.

The responses have the task's format but random answers (`RLTask.demo`), so the warm-started policy emits
well-formed responses at about chance success (digit_sum: P(4 random digits sum to S) ≈ 5-8%, arch_rl.md §2(e));
what RL then learns is the rule, not the format. Batches use the rollout layout (`lcjax.rl.rollout`) and the
SFT loop's sharded step (`make_step` + `llama_loss`).
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from lcjax.models.build import init_model
from lcjax.rl.tasks import PAD, RL_TASKS, CharCodec
from lcjax.sharding.mesh import mesh_and_rules
from lcjax.sharding.partition import param_shardings, place
from lcjax.sharding.steps import init_optimizer, llama_loss, replicated
from lcjax.training.config import OptimizerConfig
from lcjax.training.loop import _batch_shardings
from lcjax.training.optimizers import make_optimizer
from lcjax.training.state import TrainState, make_step


def demo_batch(task_name: str, rng: np.random.Generator, batch: int, seq_len: int) -> dict:
  """{"tokens", "targets", "positions", "loss_mask"} [batch, seq_len] of prompt + demo response + eos rows."""
  task, codec = RL_TASKS.get(task_name), CharCodec()
  tokens = np.full((batch, seq_len), PAD, np.int32)
  targets = np.full((batch, seq_len), PAD, np.int32)
  mask = np.zeros((batch, seq_len), np.float32)
  for i, p in enumerate(task.make(rng, batch)):
    prompt = codec.encode(p["text"])
    full = prompt + codec.encode(task.demo(rng, p), bos=False) + [codec.eos]
    tokens[i, :len(full) - 1] = full[:-1]
    targets[i, :len(full) - 1] = full[1:]
    mask[i, len(prompt) - 1:len(full) - 1] = 1.0
  positions = np.broadcast_to(np.arange(seq_len, dtype=np.int32), (batch, seq_len)).copy()
  return {"tokens": tokens, "targets": targets, "positions": positions, "loss_mask": mask}


def format_sft(model_cfg, task_name: str, *, steps: int, batch: int = 32, seq_len: int = 32, lr: float = 3e-3,
               seed: int = 0, mesh_cfg=None, num_devices: int = 1):
  """Params (nnx.State) of init_model(model_cfg, seed) after `steps` format-only SFT steps; also returns the
  last step's metrics. Deterministic in `seed`."""
  from lcjax.config import MeshConfig

  mesh, rules = mesh_and_rules(mesh_cfg or MeshConfig(), jax.devices()[:num_devices])
  graphdef, params = nnx.split(init_model(model_cfg, seed))
  optimizer, schedule = make_optimizer(OptimizerConfig(lr=lr, schedule="cosine", warmup_steps=10), steps)
  p_shard = param_shardings(params, mesh, rules)
  params = place(params, p_shard)
  opt_state, opt_shard = init_optimizer(optimizer, params, p_shard, mesh)
  state = TrainState(jax.device_put(np.int32(0), replicated(mesh)), params, opt_state)
  rng = np.random.default_rng([seed, 1])
  first = demo_batch(task_name, rng, batch, seq_len)
  b_shard = _batch_shardings(first, mesh, rules)
  step = make_step(llama_loss(graphdef), optimizer, schedule, mesh, rules,
                   TrainState(replicated(mesh), p_shard, opt_shard), b_shard)
  metrics, host = {}, first
  for _ in range(steps):
    state, metrics = step(state, place(host, b_shard))
    host = demo_batch(task_name, rng, batch, seq_len)
  return state.params, {k: float(v) for k, v in jax.device_get(metrics).items()}
