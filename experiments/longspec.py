"""LongSpec (Yang, Du et al. 2025): train the one-layer draft with Anchor-Offset indices on the bundled essays
against SmolLM2-135M, and measure its mean accepted length on a held-out essay (untrained vs trained, outputs
checked identical to greedy; prompt lookup beside it).

  python -m lcjax.launch.main --config=experiments/longspec.py:runlocal --workdir=/tmp/longspec
"""

import ml_collections

from lcjax.eval.experiment import parse_arg


def get_config(arg=None):
  args = parse_arg(arg)
  if args.get("runlocal"):   # ~minutes on 2 CPU cores: 100 steps of 1 x 256 tokens, 512-token prompt, 48 tokens
    spec = dict(steps=100, seq_len=256, batch=1, window=128, prompt_len=512, new_tokens=48)
  else:                      # the paper's stage 1 shape (seq 1024, W = 512) on the bundled text; long eval prompt
    spec = dict(steps=5000, seq_len=1024, batch=8, window=512, prompt_len=4096, new_tokens=256)
  spec.update(model="smollm2-135m", gamma=4, lr=5e-4, max_len=32768, seed=0, eval_file=0)
  for key in list(spec):
    if key in args:
      spec[key] = type(spec[key])(args[key])
  return ml_collections.ConfigDict({"name": "longspec", "longspec": spec})


def sweep(add, arg=None):
  """Draft tokens per step."""
  del arg
  for gamma in (2, 4, 6):
    add(longspec={"gamma": gamma})
