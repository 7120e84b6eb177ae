"""Effective Long-Context Scaling (Llama 2 Long, Xiong et al. 2023): continual pretraining with RoPE ABF
(base 10k -> 500k) and progressive length (`lcjax.recipes.abf`).

  python -m lcjax.launch.main --config=experiments/llama2_long.py:runlocal --workdir=/tmp/abf
"""

import ml_collections

from configs import models, train
from lcjax.eval.experiment import parse_arg
from lcjax.recipes import abf


def get_config(arg=None):
  args = parse_arg(arg)
  theta = float(args.get("theta", abf.ABF_THETA))
  if args.get("runlocal"):
    section = abf.abf_train(models.tiny_decoder(260, dim=64, seq_len=256), [train.essays_source()],
                            lengths=[64, 256], steps=[20, 10], batch_size=4, new_theta=theta, lr=3e-3,
                            warmup_steps=3)
    section.update(train.local_run(section.steps))
  else:
    section = abf.abf_train(models.llama2_7b(), [train.essays_source()], lengths=[4096, abf.SEQ_LEN // 2],
                            steps=[2000, 10_000], batch_size=256, new_theta=theta)
    section.update(remat="full", grad_accum=16, checkpoint={"every": 500})
  return ml_collections.ConfigDict({"name": "llama2_long_abf", "train": section})


def sweep(add, arg=None):
  """The base frequency (the paper's RoPE ablation: 10k = plain, 500k = ABF)."""
  del arg
  for theta in (10_000.0, 100_000.0, 500_000.0):
    add(arg=f"theta={theta}")
