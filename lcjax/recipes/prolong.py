"""ProLong (Gao et al. 2024, "How to Train Long-Context Language Models (Effectively)"): continual training of a
short-context model on a mixture of long data (code repositories, books) and high-quality short data, with
document masking, a short-then-long length schedule with a RoPE base raised per stage, then SFT on short
instructions (UltraChat).

Paper defaults (ProLong-8B from Llama-3-8B-Instruct):
  mixture     code repos 30%, books 30%, textbooks 3%, ShortMix 37% (FineWeb 25, FineWeb-Edu 25, Wikipedia 10,
              Tulu-v2 10, StackExchange 10, ArXiv 10, OpenWebMath 10 — % of ShortMix)
  stages      64K tokens for 20B tokens (RoPE theta 8e6), then 512K for 20B tokens (theta 1.28e8)
  optimizer   AdamW, lr 1e-5, 10% warmup, cosine to 10%; batch 4M tokens; document masking on
  SFT         UltraChat, 1B tokens, lr 2e-5, short (<= 8K) sequences, loss on responses only
`prolong_train` builds the `train` section of an experiment from these with the sizes given.
"""

from __future__ import annotations

import ml_collections

LONG_MIX = {"code_repos": 0.30, "books": 0.30, "textbooks": 0.03}
SHORT_MIX = {"fineweb": 0.25, "fineweb_edu": 0.25, "wikipedia": 0.10, "tulu_v2": 0.10, "stackexchange": 0.10,
             "arxiv": 0.10, "openwebmath": 0.10}
SHORT_SHARE = 0.37
STAGES = ({"seq_len": 65536, "tokens": 20e9, "rope_theta": 8e6}, {"seq_len": 524288, "tokens": 20e9,
                                                                     "rope_theta": 1.28e8})
PAPER_LR, SFT_LR, WARMUP_FRACTION, BATCH_TOKENS = 1e-5, 2e-5, 0.1, 4 * 2**20


def mixture_weights(long_mix: dict = LONG_MIX, short_mix: dict = SHORT_MIX, short_share: float = SHORT_SHARE):
  """Source -> ratio of the ProLong mixture (long sources as given; ShortMix's parts scaled to short_share)."""
  total_short = sum(short_mix.values())
  return {**long_mix, **{k: short_share * v / total_short for k, v in short_mix.items()}}


def prolong_train(model: dict, sources: list[dict], sft_source: dict | None, *, stage_lengths, stage_steps,
                  stage_thetas, batch_size: int, sft_steps: int = 0, sft_seq_len: int = 0, lr: float = PAPER_LR,
                  sft_lr: float = SFT_LR) -> ml_collections.ConfigDict:
  """The `train` section of a ProLong run.

  Args:
    model: ModelConfig fields.  sources: SourceConfig dicts whose weights follow `mixture_weights` (by name).
    sft_source: an SFT SourceConfig (prompt_field / response_field) for the final stage, or None.
    stage_lengths, stage_steps, stage_thetas: the short-then-long schedule (per stage).  batch_size: rows.
    sft_steps, sft_seq_len: the SFT stage (short sequences).  lr, sft_lr: peak learning rates.
  Returns:
    ConfigDict for `lcjax.training.config.TrainConfig` (document masking: packing with segment ids,
    split_docs=False so documents are not cut across rows unless longer than one).
  """
  stages, start = [], 0
  for seq_len, steps, theta in zip(stage_lengths, stage_steps, stage_thetas):
    stages.append({"start": start, "seq_len": seq_len, "rope": {"theta": float(theta)}})
    start += steps
  if sft_source is not None and sft_steps:
    stages.append({"start": start, "seq_len": sft_seq_len or stage_lengths[0], "rope": dict(stages[-1]["rope"]),
                   "data": {"sources": [sft_source]}, "lr_scale": sft_lr / lr})
    start += sft_steps
  return ml_collections.ConfigDict({
      "model": model, "steps": start, "stages": stages,
      "data": {"sources": sources, "seq_len": stage_lengths[0], "batch_size": batch_size, "split_docs": False},
      "optimizer": {"name": "adamw", "schedule": "cosine", "lr": lr, "warmup_steps": int(WARMUP_FRACTION * start),
                    "min_lr_ratio": 0.1, "weight_decay": 0.1},
  })
