"""End-to-end: a tiny decoder trained from scratch on kv retrieval (experiments/passkey.py:runlocal) reaches
>= 90% retrieval accuracy at its trained length, and the exported model loads back with the same accuracy."""

import os

import pytest

from lcjax.launch.experiments import load_experiment, run_experiment
from lcjax.training.loop import load_trained
from lcjax.training.retrieval import retrieval_accuracy, retrieval_samples

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_tiny_decoder_learns_kv_retrieval(tmp_path):
  experiment = load_experiment(os.path.join(REPO, "experiments", "passkey.py"))
  cfg = experiment.get_config("runlocal")
  cfg.train.num_devices = 1
  cfg.retrieval.lengths = [cfg.train.data.seq_len]
  cfg.retrieval.num_samples = 64
  summary = run_experiment(cfg, str(tmp_path))
  acc = summary["retrieval"][str(cfg.train.data.seq_len)]
  assert acc >= 0.9, summary
  model_cfg, _, params = load_trained(str(tmp_path))
  samples = retrieval_samples(cfg.train.data.seq_len, model_cfg.vocab_size, 64, **cfg.retrieval.options)
  assert retrieval_accuracy(model_cfg, params, samples) == acc
