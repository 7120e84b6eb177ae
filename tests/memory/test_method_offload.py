"""KV methods over a host-tier cache: equal to the device-resident method (every method; SpeContext's elastic
working set), only the selected rows cross to the device (lowered for cuda/tpu), and the elastic plan by hand."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lcjax.errors import ConfigError, ShapeError
from lcjax.inference import Generator
from lcjax.inference.kv_method import MethodGenerator, forced_logits
from lcjax.kvcache import make_method
from lcjax.kvcache.attend import Selection
from lcjax.kvcache.specontext import forced_logits_specontext, init_probe_cache, truncated
from lcjax.memory import memory_kind_of
from lcjax.memory.method_offload import (ElasticLayerKV, elastic_buckets, elastic_plan, loaded_rows, to_elastic,
                                         to_host_method_cache)
from lcjax.models.build import init_model
from tests.tiny import TINY

MAX_LEN, CONTEXT, STEPS, BUDGET = 96, 70, 5, 40
SMALL = {"dense": {"block_size": 16}, "retrolm": {"block_size": 16}, "longheads": {"block_size": 16},
         "longgen": {"block_size": 8, "full_every": 2}, "squeezed": {"clusters": 8, "local": 8},
         "a2ats": {"window": 8, "subspaces": 2, "codes": 8}, "specontext": {"local": 4}}
# token-level (a2ats), page-level (retrolm), per-query-head (longheads) selections, and a post-attention step (sink_kv):
# every method reaches the host tier through the same select -> host gather -> attend path
METHODS = ["a2ats", "retrolm", "longheads", "sink_kv"]


@pytest.fixture(scope="module")
def tiny():
  graphdef, state = nnx.split(init_model(TINY, seed=1))
  r = np.random.default_rng(0)
  return graphdef, state, r.integers(3, 90, CONTEXT).tolist(), r.integers(3, 90, (1, STEPS))


def _prefilled(tiny, name, budget=BUDGET):
  graphdef, state, prompt, _ = tiny
  gen = MethodGenerator(TINY, graphdef, make_method(name, budget=budget, **SMALL.get(name, {})), pad_to=16)
  gen.context = CONTEXT
  return gen.prefill(state, [prompt], gen.init_cache(1, MAX_LEN))[1]


@pytest.mark.parametrize("name", METHODS)
def test_host_tier_method_equals_device_method(tiny, name):
  graphdef, state, _, tokens = tiny
  device = forced_logits(graphdef, state, _prefilled(tiny, name), tokens)
  host_cache = to_host_method_cache(_prefilled(tiny, name), "pinned_host")
  assert memory_kind_of(host_cache.layers[0].k) == "pinned_host"
  host = forced_logits(graphdef, state, host_cache, tokens)
  np.testing.assert_allclose(host, device, atol=1e-5, rtol=1e-5)


def _specontext(tiny, elastic: bool):
  graphdef, state, prompt, tokens = tiny
  cache = _prefilled(tiny, "specontext")
  if elastic:
    cache = to_elastic(cache, "pinned_host")
  scfg, sg, sst = truncated(TINY, state, 1)
  _, small = Generator(scfg, sg, pad_to=16).prefill(sst, [prompt], init_probe_cache(scfg, 1, MAX_LEN))
  return forced_logits_specontext(graphdef, sg, ((0, 0), (0, 2)), state, sst, tokens, cache, small)


def test_specontext_elastic_host_working_set_equals_device(tiny):
  logits, moved = _specontext(tiny, elastic=False)
  e_logits, e_moved = _specontext(tiny, elastic=True)
  np.testing.assert_allclose(e_logits, logits, atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(e_moved, moved)
  assert moved[0, 0] == BUDGET and 0 < moved[1:].max() < BUDGET  # the first load is whole, later ones the difference
  assert loaded_rows(int(moved[1:].max()), BUDGET) < BUDGET


def test_elastic_plan_by_hand():
  buf_pos = jnp.array([[[3, 7, -1, 9]]], jnp.int32)
  sel = Selection(jnp.array([[[2, 3, 9]]], jnp.int32), jnp.array([[3]], jnp.int32), 1)
  plan = elastic_plan(buf_pos, sel, 16)
  # 3 and 9 stay in their slots, 7 is evicted, the missing 2 goes to the first free slot (slot 1)
  assert plan["buf_pos"].tolist() == [[[3, 2, -1, 9]]] and plan["n_need"].tolist() == [[1]]
  assert int(plan["need_pos"][0, 0, 0]) == 2 and int(plan["slots"][0, 0, 0]) == 1
  assert elastic_buckets(64) == (4, 8, 16, 32, 64) and loaded_rows(5, 64) == 8
  with pytest.raises(ShapeError, match="block size 1"):
    elastic_plan(buf_pos, Selection(sel.indices, sel.counts, 4), 16)


def test_bad_tiers_and_layers_raise(tiny):
  cache = _prefilled(tiny, "retrolm")
  with pytest.raises(ConfigError, match="host JAX memory kind"):
    to_host_method_cache(cache, "device")
  with pytest.raises(ShapeError, match="token-selection method"):
    to_elastic(cache)
  layer = to_elastic(_prefilled(tiny, "specontext")).layers[0]
  assert isinstance(layer, ElasticLayerKV)
  with pytest.raises(ShapeError, match="one token per step"):
    layer.update(jnp.zeros((1, 2, TINY.num_kv_heads, TINY.head_dim)), jnp.zeros((1, 2, TINY.num_kv_heads,
                 TINY.head_dim)), jnp.array([[70, 71]]))


def _step_text(tiny, cache, platform):
  graphdef, state, *_ = tiny

  def step(state, token, cache):
    logits, cache = nnx.merge(graphdef, state)(token[:, None], cache.lengths[:, None], cache=cache)
    return logits, cache

  return jax.jit(step).trace(state, jnp.ones((1,), jnp.int32), cache).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_only_selected_rows_cross_to_the_device(tiny, platform):
  cache = to_host_method_cache(_prefilled(tiny, "a2ats"), "pinned_host")
  text = _step_text(tiny, cache, platform)
  kh, h = TINY.num_kv_heads, TINY.head_dim
  assert '_xla_compute_type = "host"' in text
  placed = lambda kind: set(re.findall(rf'_xla_buffer_placement = "{kind}"}}}} : \(tensor<([0-9x]+)xf32>\)', text))  # noqa: E731
  # to the device: k and v rows of every layer, B * K * budget rows of H (never the whole B * K * S rows);
  # to the host: only the new token's k and v [B, K, 1, H]
  assert placed("device") == {f"{kh * BUDGET}x{h}"}, placed("device")
  assert placed("pinned_host") == {f"1x{kh}x1x{h}"}, placed("pinned_host")
