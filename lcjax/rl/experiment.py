"""Running an RL experiment section: format-only SFT warm start, then `rl_train` (used by `lcjax.launch`).

config.rl: RLConfig fields (model as a ModelConfig mapping).  config.warmstart: {steps, batch, lr} of the
format-only SFT (`lcjax.rl.warmstart`; steps = 0 starts RL from the random init).
"""

from __future__ import annotations

import json
import os

from lcjax.config import from_dict
from lcjax.rl.train import RLConfig, rl_train
from lcjax.rl.warmstart import format_sft


def run_rl(config, workdir: str) -> dict:
  """Warm start + RL in `workdir`; returns {"iteration", "sft", "first", "last"} records, also in summary.json."""
  cfg = from_dict(RLConfig, config.rl, "rl.")
  ws = dict(config.get("warmstart", {}) or {})
  params, sft = None, {}
  if ws.get("steps", 0):
    params, sft = format_sft(cfg.model, cfg.task, steps=int(ws["steps"]), batch=int(ws.get("batch", 32)),
                             seq_len=cfg.seq_len, lr=float(ws.get("lr", 3e-3)), seed=cfg.seed,
                             mesh_cfg=cfg.mesh, num_devices=cfg.num_devices or 1)
  out = rl_train(cfg, workdir, init_params=params)
  hist = out["history"]
  summary = {"iteration": out["iteration"], "sft": sft, "first": hist[0] if hist else None,
             "last": hist[-1] if hist else None}
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return summary
