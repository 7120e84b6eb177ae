"""The RL loop: `rl_train(cfg, workdir, init_params=None)` alternates rollouts and sharded policy updates, resuming
exactly from the newest orbax checkpoint (the SFT loop's `Checkpointer` and `TrainState`).

One iteration (MiniMax-M1's off-policy regime):
  1. P prompts from the task (numpy rng seeded by (seed, iteration)), G samples each with the Generator under the
     current params θ_old (PRNG key fold_in(seed, iteration)); rewards from REWARDS; fp32 sampling log-probs.
  2. Group-normalised advantages; with `dynamic_sampling` (DAPO) the zero-variance groups are dropped (their rows'
     loss mask is zeroed, so they count neither in the loss nor in the token normaliser).
  3. The B = P * G rows split into `updates_per_batch` minibatches, each one optimizer step of the registered policy
     loss (`make_step` of `lcjax.training.state`: plain `jax.jit` with shardings on the mesh), so later minibatches
     are off-policy (r ≠ 1) and the clip / IS weight matters.
Everything is a function of (seed, iteration, state), so a run restarted from a checkpoint repeats the
uninterrupted run's trajectory exactly.

workdir: checkpoints/<iteration>/{state,data,meta} (orbax) and metrics.jsonl (one record per iteration).
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np
from flax import nnx

from lcjax.config import MeshConfig, ModelConfig, to_dict
from lcjax.errors import ConfigError
from lcjax.inference.generate import Generator
from lcjax.inference.sampling import SamplingConfig
from lcjax.models.build import init_model
from lcjax.rl.losses import POLICY_LOSSES, PolicyLossConfig, group_advantages, nonzero_variance_groups
from lcjax.rl.rewards import REWARDS
from lcjax.rl.rollout import rl_loss, rollout
from lcjax.rl.tasks import RL_TASKS, CharCodec
from lcjax.sharding.mesh import mesh_and_rules
from lcjax.sharding.partition import param_shardings, place
from lcjax.sharding.steps import init_optimizer, replicated
from lcjax.training.checkpoints import Checkpointer
from lcjax.training.config import CheckpointConfig, OptimizerConfig
from lcjax.training.loop import _batch_shardings
from lcjax.training.metrics import JsonlLog
from lcjax.training.optimizers import make_optimizer
from lcjax.training.state import TrainState, make_step


@dataclasses.dataclass(frozen=True)
class RLConfig:
  """An RL run.

  Attributes:
    model: the policy.  task: name in RL_TASKS.  loss: name in POLICY_LOSSES.
    reward: name in REWARDS scoring the responses ("" = the task's own reward).
    eps_low, eps_high: required clip range (ratio for PPO/GRPO/DAPO, IS weight for CISPO); see PolicyLossConfig.
    mask_eps_low, mask_eps_high: CISPO's optional eq. 7 mask.  dynamic_sampling: drop zero-variance groups (DAPO).
    prompts_per_batch: P.  group_size: G.  updates_per_batch: minibatch optimizer steps per rollout batch.
    seq_len: L of the training rows (prompt + response).  temperature: sampling temperature.
    iterations: rollout batches.  stop_at: end this process after that iteration (0 = iterations).
  """

  model: ModelConfig
  task: str
  loss: str
  eps_low: float
  eps_high: float
  mask_eps_low: float | None = None
  mask_eps_high: float | None = None
  dynamic_sampling: bool = False
  prompts_per_batch: int = 8
  group_size: int = 8
  updates_per_batch: int = 4
  seq_len: int = 32
  temperature: float = 1.0
  iterations: int = 100
  stop_at: int = 0
  seed: int = 0
  optimizer: OptimizerConfig = OptimizerConfig(lr=3e-4, schedule="constant", b2=0.95)
  checkpoint: CheckpointConfig = CheckpointConfig()
  mesh: MeshConfig = MeshConfig()
  num_devices: int = 0
  reward: str = ""

  def __post_init__(self):
    RL_TASKS.entry(self.task)
    POLICY_LOSSES.entry(self.loss)
    if self.reward:
      REWARDS.entry(self.reward)
    self.loss_config  # validates the eps values
    rows = self.prompts_per_batch * self.group_size
    if self.group_size < 2 or self.prompts_per_batch < 1 or self.iterations < 1:
      raise ConfigError(f"group_size must be >= 2 and prompts_per_batch, iterations >= 1; got {self.group_size}, "
                        f"{self.prompts_per_batch}, {self.iterations}")
    if self.updates_per_batch < 1 or rows % self.updates_per_batch:
      raise ConfigError(f"updates_per_batch={self.updates_per_batch} must divide prompts_per_batch * group_size = "
                        f"{rows}")
    if self.temperature <= 0:
      raise ConfigError(f"temperature must be > 0 for RL sampling, got {self.temperature}")

  @property
  def loss_config(self) -> PolicyLossConfig:
    return PolicyLossConfig(self.eps_low, self.eps_high, self.mask_eps_low, self.mask_eps_high)


def prepare_batch(cfg: RLConfig, ro) -> tuple[dict, dict]:
  """(training batch with "adv", stats) of a rollout: advantages, dynamic sampling, success and kept-group share."""
  adv = np.asarray(group_advantages(ro.rewards, cfg.group_size))
  batch = dict(ro.batch, adv=adv)
  keep = np.asarray(nonzero_variance_groups(ro.rewards, cfg.group_size))
  if cfg.dynamic_sampling:
    rows = np.repeat(keep, cfg.group_size).astype(np.float32)
    batch["loss_mask"] = batch["loss_mask"] * rows[:, None]
  stats = {"reward": float(ro.rewards.mean()), "success": float((ro.rewards >= 1.0).mean()),
           "kept_groups": float(keep.mean()), "response_len": float(ro.response_lengths.mean())}
  return batch, stats


@dataclasses.dataclass
class _Programs:
  """What a run compiles, shared by runs of the same config in one process (a resumed run reuses the compiles)."""

  mesh: object
  graphdef: object
  generator: Generator
  optimizer: object
  shardings: TrainState
  batch_shardings: dict
  step: object


_PROGRAMS: dict = {}


def _programs(cfg: RLConfig) -> _Programs:
  key = dataclasses.replace(cfg, stop_at=0, checkpoint=CheckpointConfig(), seed=0)  # compiles do not depend on these
  if key in _PROGRAMS:
    return _PROGRAMS[key]
  devices = jax.devices()[:cfg.num_devices] if cfg.num_devices else jax.devices()
  mesh, rules = mesh_and_rules(cfg.mesh, devices)
  graphdef, params = nnx.split(init_model(cfg.model, cfg.seed))
  optimizer, schedule = make_optimizer(cfg.optimizer, cfg.iterations * cfg.updates_per_batch)
  p_shard = param_shardings(params, mesh, rules)
  opt_shard = init_optimizer(optimizer, place(params, p_shard), p_shard, mesh)[1]
  shardings = TrainState(replicated(mesh), p_shard, opt_shard)
  mb = cfg.prompts_per_batch * cfg.group_size // cfg.updates_per_batch
  rows = np.zeros((mb, cfg.seq_len))
  b_shard = _batch_shardings({k: rows for k in _BATCH_KEYS} | {"adv": rows[:, 0]}, mesh, rules)
  loss_fn = rl_loss(graphdef, cfg.loss, cfg.loss_config)
  step = make_step(loss_fn, optimizer, schedule, mesh, rules, shardings, b_shard)
  _PROGRAMS[key] = _Programs(mesh, graphdef, Generator(cfg.model, graphdef, pad_to=16), optimizer, shardings,
                             b_shard, step)
  return _PROGRAMS[key]


_BATCH_KEYS = ("tokens", "targets", "positions", "loss_mask", "old_logp")


def rl_train(cfg: RLConfig, workdir: str, init_params=None) -> dict:
  """Runs (or resumes) RL; returns {"iteration", "history" (this process's records), "params", "graphdef"}.

  Args:
    init_params: starting policy params (e.g. an SFT'd model's nnx.State); None = init_model(cfg.model, seed).
  """
  os.makedirs(workdir, exist_ok=True)
  prog = _programs(cfg)
  if init_params is None:
    params = place(nnx.split(init_model(cfg.model, cfg.seed))[1], prog.shardings.params)
  else:  # copied: the train step donates its params, the caller's must survive (e.g. one warm start, many arms)
    params = jax.tree.map(lambda x: x.copy(), place(init_params, prog.shardings.params))
  opt_state = jax.jit(prog.optimizer.init, out_shardings=prog.shardings.opt_state)(params)
  state = TrainState(jax.device_put(np.int32(0), prog.shardings.step), params, opt_state)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), cfg.checkpoint)
  start = 0
  if ckpt.latest_step() is not None:
    state, data, _ = ckpt.restore(ckpt.latest_step(), state)
    start = int(data["iteration"])
  task, codec = RL_TASKS.get(cfg.task), CharCodec()
  sampling = SamplingConfig(temperature=cfg.temperature)
  reward = cfg.reward or task.reward
  log = JsonlLog(os.path.join(workdir, "metrics.jsonl"))
  history = []
  stop = min(cfg.stop_at or cfg.iterations, cfg.iterations)
  mb = cfg.prompts_per_batch * cfg.group_size // cfg.updates_per_batch
  for it in range(start, stop):
    t0 = time.perf_counter()
    prompts = task.make(np.random.default_rng([cfg.seed, it]), cfg.prompts_per_batch)
    ro = rollout(prog.generator, state.params, prompts, codec, group_size=cfg.group_size,
                 max_new_tokens=task.max_new_tokens, seq_len=cfg.seq_len, reward=reward,
                 rng=jax.random.fold_in(jax.random.PRNGKey(cfg.seed), it), sampling=sampling)
    batch, record = prepare_batch(cfg, ro)
    t1 = time.perf_counter()
    metrics = []
    for u in range(cfg.updates_per_batch):
      minibatch = {k: v[u * mb:(u + 1) * mb] for k, v in batch.items()}
      state, m = prog.step(state, place(minibatch, prog.batch_shardings))
      metrics.append(jax.device_get(m))
    for k in ("loss", "clip_fraction", "zero_grad_fraction", "clipped_zero_grad_fraction", "kl_rollout",
              "grad_norm"):
      record[k] = float(np.mean([m[k] for m in metrics]))
    record.update(iteration=it + 1, rollout_s=t1 - t0, update_s=time.perf_counter() - t1)
    log.write(record)
    history.append(record)
    if cfg.checkpoint.every and (it + 1) % cfg.checkpoint.every == 0 and it + 1 < stop:
      ckpt.save(it + 1, state, {"iteration": it + 1}, {"model": to_dict(cfg.model)})
  if ckpt.latest_step() != stop and stop > start:
    ckpt.save(stop, state, {"iteration": stop}, {"model": to_dict(cfg.model)})
  ckpt.close()
  log.close()
  return {"iteration": stop, "history": history, "params": state.params, "graphdef": prog.graphdef}
