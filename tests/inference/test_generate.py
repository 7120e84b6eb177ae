"""Prefill/decode over the dense cache equal the no-cache forward; batching, sampling, stops, context errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lcjax.config import RopeConfig
from lcjax.errors import ConfigError, ContextLengthError, ShapeError
from lcjax.inference import Generator, SamplingConfig, context_limit
from lcjax.inference.sampling import filter_logits, sample
from lcjax.models.build import init_model
from lcjax.models.llama import forward
from tests.tiny import TINY


@pytest.fixture(scope="module")
def tiny():
  model = init_model(TINY.replace(eos_token_ids=(5,)), seed=0)
  graphdef, state = nnx.split(model)
  return model.cfg, graphdef, state


def _greedy_reference(graphdef, state, prompt, n):
  """Greedy decoding by re-running the full forward (no cache) each step."""
  tokens = list(prompt)
  for _ in range(n):
    logits = forward(graphdef, state, jnp.asarray([tokens]))[0]
    tokens.append(int(jnp.argmax(logits[0, -1])))
  return tokens[len(prompt):]


def test_cached_decode_logits_equal_full_forward(tiny):
  cfg, graphdef, state = tiny
  gen = Generator(cfg, graphdef, pad_to=16)
  prompt = [3, 17, 42, 8, 9, 11, 60]
  cache = gen.init_cache(1, 32)
  logits, cache = gen.prefill(state, [prompt], cache)
  full = forward(graphdef, state, jnp.asarray([prompt + [7]]))[0]
  np.testing.assert_allclose(logits[0], full[0, len(prompt) - 1], atol=1e-5)
  model = nnx.merge(graphdef, state)
  step_logits, _ = model(jnp.asarray([[7]]), cache.lengths[:, None], cache=cache)
  np.testing.assert_allclose(step_logits[0, 0], full[0, -1], atol=1e-5)


def test_greedy_generation_matches_no_cache_reference(tiny):
  cfg, graphdef, state = tiny
  prompt = [3, 17, 42, 8, 9]
  out = Generator(cfg, graphdef, pad_to=16).generate(state, [prompt], max_new_tokens=10, stop_ids=[])
  assert out.tokens[0] == _greedy_reference(graphdef, state, prompt, 10)
  assert out.finish_reasons == ["length"]


@pytest.mark.parametrize("chunk", [None, 8])
def test_batched_prompts_of_different_lengths_equal_each_alone(tiny, chunk):
  cfg, graphdef, state = tiny
  gen = Generator(cfg, graphdef, pad_to=16, prefill_chunk=chunk)
  prompts = [[1, 2, 3], list(range(10, 31)), [7] * 12]
  batched = gen.generate(state, prompts, max_new_tokens=6, stop_ids=[])
  for p, toks in zip(prompts, batched.tokens):
    assert toks == gen.generate(state, [p], max_new_tokens=6, stop_ids=[]).tokens[0]


def test_stop_tokens_end_rows(tiny):
  cfg, graphdef, state = tiny
  gen = Generator(cfg, graphdef, pad_to=16)
  free = gen.generate(state, [[1, 2, 3]], max_new_tokens=8, stop_ids=[]).tokens[0]
  stop = free[3]
  out = gen.generate(state, [[1, 2, 3]], max_new_tokens=8, stop_ids=[stop])
  assert out.tokens[0] == free[:free.index(stop)] and out.finish_reasons == ["stop"]


def test_sampling_is_reproducible_and_respects_top_k():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]] * 2000))
  key = jax.random.PRNGKey(1)
  a = sample(logits, key, SamplingConfig(temperature=1.0, top_k=2))
  np.testing.assert_array_equal(a, sample(logits, key, SamplingConfig(temperature=1.0, top_k=2)))
  assert set(np.asarray(a).tolist()) == {0, 1}
  assert abs(float(jnp.mean(a == 0)) - 0.5 / 0.8) < 0.04  # renormalised 0.625
  assert np.all(np.asarray(sample(logits, key, SamplingConfig())) == 0)


def test_top_p_keeps_smallest_nucleus():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
  kept = np.isfinite(np.asarray(filter_logits(logits, 0, 0.75)))[0]
  np.testing.assert_array_equal(kept, [True, True, False, False])  # 0.5 < 0.75 <= 0.8
  kept = np.isfinite(np.asarray(filter_logits(logits, 0, 0.5)))[0]
  np.testing.assert_array_equal(kept, [True, False, False, False])
  with pytest.raises(ConfigError, match="top_p"):
    SamplingConfig(top_p=0.0)


def test_context_limit_and_errors(tiny):
  cfg, graphdef, state = tiny
  gen = Generator(cfg, graphdef, pad_to=16)
  with pytest.raises(ContextLengthError, match="120 tokens \\+ 20 new tokens = 140 exceeds .* 128 tokens; configure"):
    gen.generate(state, [[1] * 120], max_new_tokens=20)
  assert context_limit(cfg.replace(rope=RopeConfig(scaling="yarn", factor=4.0))) == 512
  assert context_limit(cfg.replace(rope=RopeConfig(scaling="abf", new_theta=1e6))) is None
  with pytest.raises(ShapeError, match="explicit rng"):
    gen.generate(state, [[1]], sampling=SamplingConfig(temperature=0.7))
  with pytest.raises(ShapeError, match="at least one token"):
    gen.generate(state, [[]], max_new_tokens=2)


def test_rope_scaling_allows_longer_prompts(tiny):
  cfg, graphdef, state = tiny
  scaled = cfg.replace(rope=RopeConfig(theta=10000.0, scaling="linear", factor=2.0))
  graphdef2, _ = nnx.split(init_model(scaled))
  out = Generator(scaled, graphdef2, pad_to=16).generate(state, [[1] * 130], max_new_tokens=3, stop_ids=[])
  assert len(out.tokens[0]) == 3


def test_sliding_window_and_sink_model_decode_matches_forward():
  cfg = TINY.replace(sliding_window=6, attention_sinks=2)
  graphdef, state = nnx.split(init_model(cfg, seed=2))
  prompt = list(range(1, 15))
  out = Generator(cfg, graphdef, pad_to=16).generate(state, [prompt], max_new_tokens=5, stop_ids=[])
  assert out.tokens[0] == _greedy_reference(graphdef, state, prompt, 5)
