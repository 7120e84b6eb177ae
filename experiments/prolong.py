"""ProLong continual training (Gao et al. 2024): long/short mixture, document masking, short-then-long stages with a
raised RoPE base, then SFT on short instructions (`lcjax.recipes.prolong`).

  runlocal: a tiny byte-level model on the shipped essays (long) + GSM8K questions (short), 64 -> 256 tokens,
            then SFT on GSM8K question -> answer; the full config uses the paper's stages on SmolLM2-135M shapes.
  python -m lcjax.launch.main --config=experiments/prolong.py:runlocal --workdir=/tmp/prolong
"""

import ml_collections

from configs import models, train
from lcjax.eval.experiment import parse_arg
from lcjax.recipes import prolong


def get_config(arg=None):
  args = parse_arg(arg)
  weights = prolong.mixture_weights()
  long_share = sum(prolong.LONG_MIX.values())
  sources = [train.essays_source(long_share, "books"), train.gsm8k_text_source(1.0 - long_share, "shortmix")]
  if args.get("runlocal"):
    model = models.tiny_decoder(260, dim=64, seq_len=256)
    section = prolong.prolong_train(model, sources, train.gsm8k_sft_source(), stage_lengths=[64, 256],
                                    stage_steps=[20, 10], stage_thetas=[10_000.0, 40_000.0], batch_size=4,
                                    sft_steps=10, sft_seq_len=128, lr=3e-3, sft_lr=1e-3)
    section.update(train.local_run(section.steps))
  else:
    model = {**models.smollm2_135m(), "max_seq_len": prolong.STAGES[-1]["seq_len"]}
    lengths = [s["seq_len"] for s in prolong.STAGES]
    steps = [int(s["tokens"] // prolong.BATCH_TOKENS) for s in prolong.STAGES]
    section = prolong.prolong_train(model, sources, train.gsm8k_sft_source(), stage_lengths=lengths,
                                    stage_steps=steps, stage_thetas=[s["rope_theta"] for s in prolong.STAGES],
                                    batch_size=prolong.BATCH_TOKENS // lengths[0], sft_steps=250, sft_seq_len=8192)
    section.update(remat="full", grad_accum=8, checkpoint={"every": 500})
  return ml_collections.ConfigDict({"name": "prolong", "mixture": weights, "train": section})


def sweep(add, arg=None):
  """The ratio of long data (the ablation of the paper's Table 4)."""
  del arg
  for long_share in (0.4, 0.6, 0.8):
    add(train={"data": {"sources": [train.essays_source(long_share, "books"),
                                    train.gsm8k_text_source(1.0 - long_share, "shortmix")]}})
