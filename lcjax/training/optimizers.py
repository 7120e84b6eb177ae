"""Optimizers and learning-rate schedules by name (registries `OPTIMIZERS`, `SCHEDULES`), built with optax.

  adamw   decoupled weight decay Adam (Loshchilov & Hutter 2019)
  muon    Muon (Jordan et al. 2024): Newton-Schulz orthogonalised momentum on 2-D+ weights, AdamW on the rest
          (optax.contrib.muon)
  sgd     SGD with momentum b1

  constant | cosine (warmup -> cosine to min_lr_ratio * lr) | linear (warmup -> linear decay) |
  wsd (warmup-stable-decay: constant, then linear decay over the last 10% of steps)
"""

from __future__ import annotations

from typing import Callable

import optax

from lcjax.registry import Registry
from lcjax.training.config import OptimizerConfig

SCHEDULES: Registry[Callable[[OptimizerConfig, int], optax.Schedule]] = Registry("LR schedule")
OPTIMIZERS: Registry[Callable[[OptimizerConfig, optax.Schedule], optax.GradientTransformation]] = Registry(
    "optimizer")


def _warmup(cfg: OptimizerConfig, then: optax.Schedule) -> optax.Schedule:
  if cfg.warmup_steps <= 0:
    return then
  return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps), then], [cfg.warmup_steps])


SCHEDULES.register("constant", lambda cfg, steps: _warmup(cfg, optax.constant_schedule(cfg.lr)),
                   doc="warmup, then constant lr")
SCHEDULES.register(
    "cosine", lambda cfg, steps: _warmup(cfg, optax.cosine_decay_schedule(
        cfg.lr, max(1, steps - cfg.warmup_steps), alpha=cfg.min_lr_ratio)),
    doc="warmup, then cosine decay to min_lr_ratio * lr")
SCHEDULES.register(
    "linear", lambda cfg, steps: _warmup(cfg, optax.linear_schedule(
        cfg.lr, cfg.lr * cfg.min_lr_ratio, max(1, steps - cfg.warmup_steps))),
    doc="warmup, then linear decay to min_lr_ratio * lr")


@SCHEDULES.register("wsd")
def _wsd(cfg: OptimizerConfig, steps: int) -> optax.Schedule:
  """Warmup-stable-decay: constant lr, then linear decay over the last 10% of the steps."""
  decay = max(1, steps // 10)
  stable = max(1, steps - decay - cfg.warmup_steps)
  body = optax.join_schedules([optax.constant_schedule(cfg.lr),
                               optax.linear_schedule(cfg.lr, cfg.lr * cfg.min_lr_ratio, decay)], [stable])
  return _warmup(cfg, body)


OPTIMIZERS.register("adamw", lambda cfg, lr: optax.adamw(lr, cfg.b1, cfg.b2, cfg.eps, weight_decay=cfg.weight_decay))
OPTIMIZERS.register("muon", lambda cfg, lr: optax.contrib.muon(lr, adam_b1=cfg.b1, adam_b2=cfg.b2, eps=cfg.eps,
                                                               weight_decay=cfg.weight_decay))
OPTIMIZERS.register("sgd", lambda cfg, lr: optax.sgd(lr, momentum=cfg.b1))


def make_optimizer(cfg: OptimizerConfig, steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optimizer with gradient clipping, its lr schedule) for `steps` total steps."""
  schedule = SCHEDULES.get(cfg.schedule)(cfg, steps)
  opt = OPTIMIZERS.get(cfg.name)(cfg, schedule)
  if cfg.clip_norm > 0:
    opt = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), opt)
  return opt, schedule
