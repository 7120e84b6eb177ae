"""Effective Long-Context Scaling (Xiong et al. 2023, Llama 2 Long): continual pretraining of Llama 2 on longer
sequences with RoPE's base frequency raised from 10,000 to 500,000 (adjusted base frequency, ABF: w_i = b'^(-2i/H),
`RopeConfig(scaling="abf", new_theta=b')`), which keeps the rotation of distant tokens from decaying attention.

Paper defaults: base 500,000; 32,768-token sequences (16,384 for 7B/13B), 400B tokens; AdamW lr 2e-5 (7B/13B)
or 1e-5 (34B/70B), 2000 warmup steps, cosine to 10%, weight decay 0.1, batch 4M tokens. Progressive length
(training at 4K first, then longer) reached the same quality for fewer FLOPs.
"""

from __future__ import annotations

import ml_collections

ABF_THETA, SEQ_LEN, LR, WARMUP_STEPS = 500_000.0, 32_768, 2e-5, 2000


def abf_rope(new_theta: float = ABF_THETA, theta: float = 10_000.0) -> dict:
  """The RopeConfig fields of ABF."""
  return {"theta": theta, "scaling": "abf", "new_theta": float(new_theta)}


def abf_train(model: dict, sources: list[dict], *, lengths, steps, batch_size: int, new_theta: float = ABF_THETA,
              lr: float = LR, warmup_steps: int = WARMUP_STEPS) -> ml_collections.ConfigDict:
  """The `train` section of an ABF continual-pretraining run with a progressive length schedule.

  Args:
    model: ModelConfig fields (of the short-context model).  sources: SourceConfig dicts.
    lengths, steps: per stage, the sequence length and its steps (one stage = no progression).
    batch_size: rows.  new_theta: the adjusted base.  lr, warmup_steps: AdamW peak lr and warmup.
  """
  rope = abf_rope(new_theta, model.get("rope", {}).get("theta", 10_000.0))
  stages, start = [], 0
  for seq_len, n in zip(lengths, steps):
    stages.append({"start": start, "seq_len": seq_len, "rope": rope})
    start += n
  return ml_collections.ConfigDict({
      "model": {**model, "rope": rope, "max_seq_len": max(lengths)}, "steps": start, "stages": stages,
      "data": {"sources": sources, "seq_len": lengths[0], "batch_size": batch_size},
      "optimizer": {"name": "adamw", "schedule": "cosine", "lr": lr, "warmup_steps": min(warmup_steps, start // 10),
                    "min_lr_ratio": 0.1, "weight_decay": 0.1},
  })
