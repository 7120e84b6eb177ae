"""The training loop: `train(cfg, workdir)` runs a TrainConfig, resuming exactly from the newest checkpoint.

workdir layout:
  checkpoints/<step>/{state,data,meta}   orbax (train state, data iterator state, metadata), atomic commits
  metrics.jsonl                          one record per logged step (appended across restarts)
  tensorboard/events.out.tfevents.*      the same scalars for TensorBoard
  model/params, model/model_config.json  the final params (orbax) and ModelConfig; `load_trained(workdir)`

Exact resume: params, optimizer state, step and the grain iterator state are restored, the step is deterministic,
so the loss trajectory after a restart equals the uninterrupted run's step for step (fp32).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import numpy as np
from flax import nnx

from lcjax.config import ModelConfig, from_dict, to_dict
from lcjax.data.pipeline import build_pipeline
from lcjax.errors import CheckpointError
from lcjax.models.build import abstract_model, init_model
from lcjax.sharding import axes
from lcjax.sharding.mesh import mesh_and_rules
from lcjax.sharding.partition import BATCH_AXES, logical_shardings, param_shardings, place
from lcjax.sharding.steps import init_optimizer, llama_loss, replicated
from lcjax.training.checkpoints import Checkpointer
from lcjax.training.config import TrainConfig
from lcjax.training.metrics import JsonlLog, TensorBoardWriter, flops_per_token, mfu
from lcjax.training.optimizers import make_optimizer
from lcjax.training.state import TrainState, make_step, with_remat


@dataclasses.dataclass
class _Stage:
  index: int
  model: ModelConfig
  data: object
  step_fn: object
  iterator: object


def stage_index(cfg: TrainConfig, step: int) -> int:
  """Index of the stage that runs optimizer step `step` (0 without stages)."""
  return max([i for i, s in enumerate(cfg.stages) if s.start <= step] or [0])


def stage_configs(cfg: TrainConfig, index: int):
  """(ModelConfig, DataConfig) of stage `index`: seq_len / batch / RoPE / data overrides applied."""
  if not cfg.stages:
    return cfg.model, cfg.data
  s = cfg.stages[index]
  data = dataclasses.replace(cfg.data, **s.data)
  data = dataclasses.replace(data, seq_len=s.seq_len or data.seq_len, batch_size=s.batch_size or data.batch_size)
  model = cfg.model.replace(rope=s.rope or cfg.model.rope, max_seq_len=max(cfg.model.max_seq_len, data.seq_len))
  return model, data


def _batch_shardings(batch: dict, mesh, rules):
  """[B, T] arrays by (act_batch, act_seq), per-row scalars [B] (rope_scale) by act_batch."""
  logical = {k: BATCH_AXES if np.ndim(v) == 2 else (axes.ACT_BATCH,) for k, v in batch.items()}
  return logical_shardings(batch, logical, mesh, rules)


def _build_stage(cfg: TrainConfig, index: int, data_state) -> _Stage:
  """The stage's configs and data iterator (restored to `data_state`); its step is built on the first batch."""
  model_cfg, data_cfg = stage_configs(cfg, index)
  iterator = iter(build_pipeline(data_cfg))
  if data_state is not None:
    try:
      iterator.set_state(data_state)
    except (TypeError, KeyError, ValueError, IndexError, AttributeError) as e:
      raise CheckpointError(f"stage {index}: saved data iterator state cannot be restored "
                            f"({type(e).__name__}: {str(e)[:200]})") from None
  return _Stage(index, model_cfg, data_cfg, None, iterator)


def _stage_step(cfg: TrainConfig, stage: _Stage, batch: dict, mesh, rules, optimizer, schedule, shardings):
  """(jitted step, batch shardings) of a stage: its model config's graphdef (RoPE) under the remat policy."""
  graphdef, _ = abstract_model(stage.model)
  loss_fn = with_remat(llama_loss(graphdef), cfg.remat, cfg.remat_save, cfg.remat_offload)
  b_shard = _batch_shardings(batch, mesh, rules)
  scale = cfg.stages[stage.index].lr_scale if cfg.stages else 1.0
  return make_step(loss_fn, optimizer, schedule, mesh, rules, shardings, b_shard, cfg.grad_accum, scale), b_shard


def init_state(cfg: TrainConfig, mesh, rules, optimizer):
  """(TrainState, its shardings, graphdef) freshly initialised from cfg.seed, placed on the mesh."""
  graphdef, params = nnx.split(init_model(cfg.model, cfg.seed))
  p_shard = param_shardings(params, mesh, rules)
  params = place(params, p_shard)
  opt_state, opt_shard = init_optimizer(optimizer, params, p_shard, mesh)
  shardings = TrainState(replicated(mesh), p_shard, opt_shard)
  state = TrainState(jax.device_put(np.int32(0), replicated(mesh)), params, opt_state)
  return state, shardings, graphdef


def check_data_state(cfg: TrainConfig, step: int, saved: dict) -> None:
  """Raises DamagedCheckpointError unless `saved` ({"stage", "iterator"}) can resume step `step`: the stage is an
  int and, for the step's own stage, the iterator state has the structure and types of a fresh iterator's."""
  from lcjax.training.checkpoints import DamagedCheckpointError, check_same_structure

  if not isinstance(saved, dict) or isinstance(saved.get("stage"), bool) or not isinstance(saved.get("stage"), int):
    raise DamagedCheckpointError(f"step {step}: data state {str(saved)[:100]!r} lacks an integer 'stage'")
  if saved["stage"] == stage_index(cfg, step):
    fresh = _build_stage(cfg, saved["stage"], None).iterator.get_state()
    check_same_structure(fresh, saved.get("iterator"), f"step {step}: iterator state")


def train(cfg: TrainConfig, workdir: str) -> dict:
  """Runs (or resumes) training; returns {"step", "loss", "accuracy", "resumed_from"} of the last step."""
  os.makedirs(workdir, exist_ok=True)
  devices = jax.devices()[:cfg.num_devices] if cfg.num_devices else jax.devices()
  mesh, rules = mesh_and_rules(cfg.mesh, devices)
  optimizer, schedule = make_optimizer(cfg.optimizer, cfg.steps)
  state, shardings, graphdef = init_state(cfg, mesh, rules, optimizer)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), cfg.checkpoint)
  try:
    resumed, state, saved_data = ckpt.restore_latest(state, lambda step, data: check_data_state(cfg, step, data))
  except BaseException:
    ckpt.close()  # an open manager's async threads print "Event loop is closed" over the real error at exit
    raise
  start, data_state = resumed or 0, None
  if resumed is not None and saved_data["stage"] == stage_index(cfg, start):
    data_state = saved_data["iterator"]
  log, tb = JsonlLog(os.path.join(workdir, "metrics.jsonl")), TensorBoardWriter(os.path.join(workdir, "tensorboard"))
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  peak = cfg.peak_flops or _measured_peak()
  stop = min(cfg.stop_at or cfg.steps, cfg.steps)
  stage, last, t0, b_shard = None, {}, time.perf_counter(), None
  meta = {"model": to_dict(cfg.model)}
  with _progress(cfg.progress, stop, start) as advance:
    for step in range(start, stop):
      if stage is None or stage.index != stage_index(cfg, step):
        stage = _build_stage(cfg, stage_index(cfg, step), data_state if stage is None else None)
      host_batch = next(stage.iterator)
      if stage.step_fn is None:
        stage.step_fn, b_shard = _stage_step(cfg, stage, host_batch, mesh, rules, optimizer, schedule, shardings)
      batch = place(host_batch, b_shard)
      state, metrics = stage.step_fn(state, batch)
      if (step + 1) % cfg.log_every == 0 or step + 1 == stop:
        last = {k: float(v) for k, v in jax.device_get(metrics).items()}
        dt, t0 = time.perf_counter() - t0, time.perf_counter()
        rows = np.shape(host_batch["tokens"])
        tps = rows[0] * rows[1] * cfg.log_every / max(dt, 1e-9) if step > start else 0.0
        ftok = flops_per_token(stage.model, stage.data.seq_len, num_params)
        last.update(step=step + 1, stage=stage.index, tokens_per_s=tps, mfu=mfu(tps, ftok, peak, len(devices)))
        log.write(last)
        tb.scalars(step + 1, last)
      if cfg.checkpoint.every and (step + 1) % cfg.checkpoint.every == 0 and step + 1 < stop:
        ckpt.save(step + 1, state, {"stage": stage.index, "iterator": stage.iterator.get_state()}, meta)
      advance()
  if stage is not None and ckpt.latest_step() != stop:
    ckpt.save(stop, state, {"stage": stage.index, "iterator": stage.iterator.get_state()}, meta)
  ckpt.close()
  log.close()
  tb.close()
  if stop == cfg.steps:
    export_model(workdir, cfg.model, state.params)
  return {"step": stop, "loss": last.get("loss"), "accuracy": last.get("accuracy"), "resumed_from": resumed,
          "params": state.params, "graphdef": graphdef}


def _measured_peak() -> float:
  from lcjax.memory.measure import measure_flops

  return measure_flops(512, 3)


class _progress:
  """A rich progress bar (or nothing); `with _progress(on, total, done) as advance: advance()`."""

  def __init__(self, on: bool, total: int, done: int):
    self.on, self.total, self.done = on, total, done

  def __enter__(self):
    if not self.on:
      return lambda: None
    from rich.progress import Progress

    self.bar = Progress()
    self.bar.start()
    task = self.bar.add_task("train", total=self.total, completed=self.done)
    return lambda: self.bar.advance(task)

  def __exit__(self, *exc):
    if self.on:
      self.bar.stop()


def export_model(workdir: str, model_cfg: ModelConfig, params) -> str:
  """Saves the params (orbax, `lcjax.checkpoint.orbax_io`) and the ModelConfig (JSON) under workdir/model."""
  from lcjax.checkpoint.orbax_io import save_params

  out = os.path.join(workdir, "model")
  os.makedirs(out, exist_ok=True)
  if not os.path.exists(os.path.join(out, "params")):
    save_params(os.path.join(out, "params"), jax.device_get(params))
  with open(os.path.join(out, "model_config.json"), "w") as f:
    json.dump(to_dict(model_cfg), f, indent=1)
  return out


def load_trained(workdir: str, **config_changes):
  """(ModelConfig, graphdef, params) of a model exported by `train` (workdir or workdir/model).

  Args:
    config_changes: ModelConfig fields to change (e.g. rope=RopeConfig(scaling="linear", factor=4.0),
      max_seq_len=2048) — the params do not depend on them.
  """
  from lcjax.checkpoint.orbax_io import restore_params

  out = workdir if os.path.exists(os.path.join(workdir, "model_config.json")) else os.path.join(workdir, "model")
  with open(os.path.join(out, "model_config.json")) as f:
    cfg = from_dict(ModelConfig, json.load(f)).replace(**config_changes)
  graphdef, abstract = abstract_model(cfg)
  return cfg, graphdef, restore_params(os.path.join(out, "params"), abstract)
