"""KV-method retrieval scoring (lcjax.eval.kv_retrieval) agrees with the dense scoring of
lcjax.training.retrieval: with budget "all" every method predicts exactly dense's tokens on the same samples; a
small budget changes predictions (so the equality is not vacuous); the trained window reaches LongHeads."""

import numpy as np
import pytest
from flax import nnx

from lcjax.data.synthetic import QUERY
from lcjax.errors import ConfigError, ShapeError
from lcjax.eval.kv_retrieval import (answer_span, calibration_prompt, method_retrieval_accuracy,
                                     method_retrieval_predictions, specontext_retrieval_model)
from lcjax.inference.kv_method import MethodGenerator
from lcjax.kvcache import KV_METHODS, make_method
from lcjax.kvcache.base import rewrap
from lcjax.models.build import abstract_model, init_model
from lcjax.training.retrieval import retrieval_accuracy, retrieval_predictions, retrieval_samples
from tests.tiny import TINY

CFG = TINY  # max_seq_len 128
LENGTH, N = 112, 16
TASK = {"num_pairs": 4, "num_keys": 4, "num_values": 8, "fused": True}
OPTIONS = {"dense": {"block_size": 8}, "retrolm": {"block_size": 8}, "longheads": {"block_size": 8},
           "longgen": {"block_size": 8, "full_every": 2}, "squeezed": {"clusters": 8, "local": 4},
           "a2ats": {"window": 4, "subspaces": 2, "codes": 8}, "specontext": {"local": 4}}
METHODS = [n for n in KV_METHODS.names() if n != "sink_kv"]  # sink_kv: an extra slot, not dense at "all"


@pytest.fixture(scope="module")
def setup():
  _, state = nnx.split(init_model(CFG, seed=3))
  samples = retrieval_samples(LENGTH, CFG.vocab_size, N, seed=7, **TASK)
  prompt = calibration_prompt(LENGTH, CFG.vocab_size, seed=99, **TASK)
  small = specontext_retrieval_model(CFG, state, prompt, budget=16, layers=1, keep=2)
  return state, samples, retrieval_predictions(CFG, state, samples, batch_size=N), small


def _preds(setup, name, budget, **kwargs):
  state, samples, _, small = setup
  method = make_method(name, budget=budget, **OPTIONS.get(name, {}))
  return method_retrieval_predictions(CFG, state, method, samples, batch_size=N, retrieval_model=small, **kwargs)


@pytest.mark.slow
def test_methods_at_all_equal_dense_and_small_budget_differs(setup):
  state, samples, dense, small = setup
  assert 0.0 <= retrieval_accuracy(CFG, state, samples) == np.mean(dense == samples["answers"])
  for name in METHODS:
    full = _preds(setup, name, "all")
    np.testing.assert_array_equal(full, dense, err_msg=name)
    if name != "dense":
      changed = np.mean(_preds(setup, name, 24) != dense)  # 24 of 101 prompt tokens
      assert changed > 0.0, name
  acc = method_retrieval_accuracy(CFG, state, make_method("retrolm", budget="all", block_size=8), samples,
                                  batch_size=N)
  assert acc == np.mean(dense == samples["answers"])


def test_trained_window_reaches_longheads(setup):
  """Evaluating past the trained window raises cfg.max_seq_len; the explicit trained_len is what LongHeads keeps
  each head within: at "all" it is dense with the raised window and drops keys with a 32-token one."""
  state, samples, dense, _ = setup
  graphdef, _ = abstract_model(CFG)
  method = make_method("longheads", budget="all", block_size=8)
  cache = MethodGenerator(CFG, graphdef, method, trained_len=32).init_cache(1, 128, 100)
  assert {l.spec.trained_len for l in cache.layers} == {32} and cache.layers[0].spec.rope_len == CFG.max_seq_len
  assert rewrap(cache, CFG, make_method("retrolm", budget=0.5, block_size=8), 100).layers[0].spec.trained_len == 32
  np.testing.assert_array_equal(_preds(setup, "longheads", "all"), dense)
  assert np.mean(_preds(setup, "longheads", "all", trained_len=32) != dense) > 0.0


def test_calibration_prompt_ends_at_a_query_key():
  prompt = calibration_prompt(LENGTH, CFG.vocab_size, seed=5, **TASK)
  assert len(prompt) == 64 and prompt[-2] == QUERY
  with pytest.raises(ConfigError, match="64-token"):
    calibration_prompt(40, CFG.vocab_size, seed=5, **TASK)


def test_answer_span_checks_rows(setup):
  state, samples, _, _ = setup
  first, last = answer_span(samples)
  assert (first, last) == (LENGTH - 3 * 4 + 2, LENGTH - 1)
  bad = dict(samples, answer_positions=samples["answer_positions"] + np.arange(N)[:, None] % 2)
  with pytest.raises(ShapeError, match="same answer positions"):
    answer_span(bad)
  with pytest.raises(ConfigError, match="specontext needs"):
    method_retrieval_predictions(CFG, state, make_method("specontext", budget="all"), samples, batch_size=N)
