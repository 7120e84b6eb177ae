"""Training, evaluation, export and loading of ConnNet / the saliency baseline.

  train_saliency(cfg, workdir) -> summary     data-parallel jitted steps (batch sharded over `act_batch`, params
                                               replicated), orbax checkpoints with the grain iterator state (exact
                                               resume), metrics.jsonl, the exported model under workdir/model
  predict(graphdef, params, images, cfg, rule) -> saliency [B, H, W] in [0, 1]
  evaluate(...) -> {metric name: corpus score} over a SaliencyDataConfig (the `saliency.*` metrics)
  load_saliency_model(dir) -> (ConnNetConfig, graphdef, params)

workdir layout: checkpoints/<step>/{state,data,meta}, metrics.jsonl, model/{params,connnet_config.json}, eval.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.config import MeshConfig, from_dict, to_dict
from lcjax.errors import CheckpointError, ConfigError
from lcjax.sharding import axes
from lcjax.sharding.mesh import mesh_and_rules
from lcjax.sharding.partition import logical_shardings, place
from lcjax.sharding.steps import init_optimizer, replicated
from lcjax.training.checkpoints import Checkpointer
from lcjax.training.config import CheckpointConfig, OptimizerConfig
from lcjax.training.metrics import JsonlLog
from lcjax.training.optimizers import make_optimizer
from lcjax.training.state import TrainState, make_step
from lcjax.vision.connectivity import decode
from lcjax.vision.data import SaliencyDataConfig, build_saliency_pipeline
from lcjax.vision.losses import connectivity_loss, saliency_loss
from lcjax.vision.network import ConnNet, ConnNetConfig, init_connnet

CONFIG_FILE = "connnet_config.json"


@dataclasses.dataclass(frozen=True)
class SaliencyTrainConfig:
  """A saliency training run.

  Attributes:
    model: ConnNetConfig.  data: the training SaliencyDataConfig.  evals: name -> SaliencyDataConfig evaluated
    after training (one pass, no shuffle).  optimizer, checkpoint, mesh: as for LM training (MeshConfig default:
    every device on `data`).  steps, seed, log_every.  edge_weight: the connectivity loss's boundary term.
    decode_rules: decode rules evaluated for the connectivity head.  num_devices: devices of the mesh (0 = all).
  """

  model: ConnNetConfig = ConnNetConfig()
  data: SaliencyDataConfig = SaliencyDataConfig()
  evals: dict = dataclasses.field(default_factory=dict)
  optimizer: OptimizerConfig = OptimizerConfig(lr=3e-3, warmup_steps=50, weight_decay=1e-4)
  checkpoint: CheckpointConfig = CheckpointConfig()
  mesh: MeshConfig = MeshConfig(data=-1, fsdp=1)
  steps: int = 1000
  seed: int = 0
  log_every: int = 50
  edge_weight: float = 0.0
  decode_rules: tuple[str, ...] = ("mean", "any", "bilateral")
  num_devices: int = 0

  def __post_init__(self):
    evals = {k: from_dict(SaliencyDataConfig, v, f"evals.{k}.") for k, v in dict(self.evals).items()}
    object.__setattr__(self, "evals", evals)
    if self.steps < 1:
      raise ConfigError(f"steps must be >= 1, got {self.steps}")


def saliency_train_config(d) -> SaliencyTrainConfig:
  """A SaliencyTrainConfig from a mapping / ConfigDict (the `saliency` section of an experiment)."""
  return from_dict(SaliencyTrainConfig, d, "saliency.")


def make_loss(graphdef, cfg: ConnNetConfig, edge_weight: float = 0.0):
  """`loss(params, batch) -> (loss, aux)` of the config's head; batch {"image" [B, H, W, 3], "mask" [B, H, W]}."""
  head_loss = connectivity_loss if cfg.head == "connectivity" else saliency_loss

  def loss(params, batch):
    logits = nnx.merge(graphdef, params)(batch["image"])
    return head_loss(logits, batch["mask"], edge_weight)

  return loss


def saliency_from_logits(logits: jax.Array, cfg: ConnNetConfig, rule: str | None = None) -> jax.Array:
  """Saliency [B, H, W] in [0, 1] from head logits [B, H, W, C] (decoded with `rule` for the connectivity head)."""
  probs = jax.nn.sigmoid(logits.astype(jnp.float32))
  return decode(probs, rule or cfg.decode) if cfg.head == "connectivity" else probs[..., 0]


def predict(graphdef, params, images, cfg: ConnNetConfig, rule: str | None = None) -> jax.Array:
  """Saliency maps [B, H, W] of images [B, H, W, 3] in [0, 1]."""
  return saliency_from_logits(nnx.merge(graphdef, params)(images), cfg, rule)


def _batch_shardings(mesh, rules):
  batch = {"image": jax.ShapeDtypeStruct((1, 1, 1, 1), jnp.float32), "mask": jax.ShapeDtypeStruct((1, 1, 1), jnp.uint8)}
  logical = {"image": (axes.ACT_BATCH, None, None, None), "mask": (axes.ACT_BATCH, None, None)}
  return logical_shardings(batch, logical, mesh, rules)


def init_train_state(cfg: SaliencyTrainConfig, mesh, optimizer):
  """(TrainState, its shardings, graphdef): params replicated (data parallelism), optimizer state likewise."""
  graphdef, params = nnx.split(init_connnet(cfg.model, cfg.seed))
  p_shard = jax.tree.map(lambda _: replicated(mesh), params)
  params = place(params, p_shard)
  opt_state, opt_shard = init_optimizer(optimizer, params, p_shard, mesh)
  state = TrainState(jax.device_put(np.int32(0), replicated(mesh)), params, opt_state)
  return state, TrainState(replicated(mesh), p_shard, opt_shard), graphdef


def train_saliency(cfg: SaliencyTrainConfig, workdir: str) -> dict:
  """Trains (or resumes) a run; exports the model and evaluates `cfg.evals` when the last step is reached.

  Returns:
    {"step", "loss", "resumed_from", "seconds", "images_per_s", "eval": {...}}.
  """
  os.makedirs(workdir, exist_ok=True)
  devices = jax.devices()[:cfg.num_devices] if cfg.num_devices else jax.devices()
  if cfg.data.batch_size % len(devices):
    raise ConfigError(f"batch_size {cfg.data.batch_size} must be a multiple of the {len(devices)} devices")
  mesh, rules = mesh_and_rules(cfg.mesh, devices)
  optimizer, schedule = make_optimizer(cfg.optimizer, cfg.steps)
  state, shardings, graphdef = init_train_state(cfg, mesh, optimizer)
  b_shard = _batch_shardings(mesh, rules)
  step_fn = make_step(make_loss(graphdef, cfg.model, cfg.edge_weight), optimizer, schedule, mesh, rules, shardings,
                      b_shard)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), cfg.checkpoint)
  iterator = iter(build_saliency_pipeline(cfg.data))
  start, resumed = 0, ckpt.latest_step()
  if resumed is not None:
    state, data_state, _ = ckpt.restore(resumed, state)
    iterator.set_state(data_state["iterator"])
    start = resumed
  log = JsonlLog(os.path.join(workdir, "metrics.jsonl"))
  meta, last, t0, timed, compute = {"model": to_dict(cfg.model)}, {}, None, 0, 0.0
  for step in range(start, cfg.steps):
    batch = place(next(iterator), b_shard)
    state, metrics = step_fn(state, batch)
    if step == start:  # the first step compiles: time the rest
      jax.block_until_ready(metrics)
      t0 = time.perf_counter()
    else:
      timed += 1
    if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
      last = {k: float(v) for k, v in jax.device_get(metrics).items()}
      compute = time.perf_counter() - t0
      last.update(step=step + 1, images_per_s=timed * cfg.data.batch_size / max(compute, 1e-9))
      log.write(last)
    if cfg.checkpoint.every and (step + 1) % cfg.checkpoint.every == 0 and step + 1 < cfg.steps:
      ckpt.save(step + 1, state, {"iterator": iterator.get_state()}, meta)
  if ckpt.latest_step() != cfg.steps:
    ckpt.save(cfg.steps, state, {"iterator": iterator.get_state()}, meta)
  ckpt.close()
  log.close()
  summary = {"step": cfg.steps, "loss": last.get("loss"), "resumed_from": resumed, "train_seconds": compute,
             "images_per_s": last.get("images_per_s")}
  export_saliency_model(os.path.join(workdir, "model"), cfg.model, state.params)
  if cfg.evals:
    summary["eval"] = {name: evaluate(graphdef, state.params, cfg.model, data, cfg.decode_rules)
                       for name, data in cfg.evals.items()}
    with open(os.path.join(workdir, "eval.json"), "w") as f:
      json.dump(summary, f, indent=1)
  return summary


def evaluate(graphdef, params, model_cfg: ConnNetConfig, data: SaliencyDataConfig,
             rules: tuple[str, ...] = ("mean",), batch_size: int = 32) -> dict:
  """{decode rule (or "saliency" for the baseline): {metric: corpus score}} over one pass of `data` at
  `data.size` (images and masks resized there), plus "images_per_s" of inference."""
  from lcjax.eval.metrics import METRICS
  from lcjax.eval.metrics.saliency import SALIENCY_METRICS

  data = dataclasses.replace(data, shuffle=False, flip=False, batch_size=batch_size)
  rules = rules if model_cfg.head == "connectivity" else ("saliency",)
  fwd = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
  rows = {r: {m: [] for m in SALIENCY_METRICS} for r in rules}
  seconds, count = 0.0, 0
  for batch in build_saliency_pipeline(data, repeat=False):
    t = time.perf_counter()
    logits = jax.block_until_ready(fwd(params, jnp.asarray(batch["image"])))
    seconds, count = seconds + time.perf_counter() - t, count + len(batch["mask"])
    for rule in rules:
      maps = np.asarray(saliency_from_logits(logits, model_cfg, None if rule == "saliency" else rule))
      for pred, gt in zip(maps, batch["mask"]):
        for name in SALIENCY_METRICS:
          rows[rule][name].append(METRICS.get(name).score(np.clip(pred, 0, 1), gt))
  out = {rule: {m.split(".", 1)[1]: METRICS.get(m).aggregate(r)["score"] for m, r in per.items()}
         for rule, per in rows.items()}
  return {**out, "images": count, "images_per_s": count / max(seconds, 1e-9)}


def export_saliency_model(directory: str, cfg: ConnNetConfig, params) -> str:
  """Saves params (orbax) and the ConnNetConfig (JSON) under `directory` (what `lcjax segment --model` reads)."""
  from lcjax.checkpoint.orbax_io import save_params

  os.makedirs(directory, exist_ok=True)
  if not os.path.exists(os.path.join(directory, "params")):
    save_params(os.path.join(directory, "params"), jax.device_get(params))
  with open(os.path.join(directory, CONFIG_FILE), "w") as f:
    json.dump(to_dict(cfg), f, indent=1)
  return directory


def load_saliency_model(directory: str) -> tuple[ConnNetConfig, object, object]:
  """(ConnNetConfig, graphdef, params) of a model exported by `train_saliency` (workdir or workdir/model)."""
  from lcjax.checkpoint.orbax_io import restore_params

  out = directory if os.path.exists(os.path.join(directory, CONFIG_FILE)) else os.path.join(directory, "model")
  path = os.path.join(out, CONFIG_FILE)
  if not os.path.exists(path):
    raise CheckpointError(f"no saliency model in {directory}: {CONFIG_FILE} not found there or in its model/")
  with open(path) as f:
    cfg = from_dict(ConnNetConfig, json.load(f))
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: ConnNet(cfg, nnx.Rngs(0))))
  return cfg, graphdef, restore_params(os.path.join(out, "params"), abstract)
