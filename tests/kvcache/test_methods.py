"""Every KV method equals dense decoding when its budget covers the cache (tiny model, fp32); Sink-KV equals its
explicit-slot reference (forward and gradient of the learnable key); LongGen's decode equals the model run with its
trained pattern; budgets, names and shapes are checked with clear errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lcjax.errors import ConfigError, ShapeError, UnknownNameError
from lcjax.inference import Generator
from lcjax.inference.kv_method import MethodGenerator, fidelity, forced_logits
from lcjax.kvcache import KV_METHODS, make_method
from lcjax.kvcache.specontext import forced_logits_specontext, init_probe_cache, truncated
from lcjax.kvcache.streaming import sink_scores, with_sink_keys
from lcjax.models.build import init_model
from lcjax.models.llama import forward
from tests.tiny import TINY

CFG = TINY
MAX_LEN, CONTEXT, STEPS = 96, 70, 6
SMALL = {"dense": {"block_size": 16}, "retrolm": {"block_size": 16}, "longheads": {"block_size": 16},
         "longgen": {"block_size": 8, "full_every": 2},
         "squeezed": {"clusters": 8, "local": 8, "levels": 2, "coarse": 3},
         "a2ats": {"window": 8, "subspaces": 2, "codes": 8}, "specontext": {"local": 4}}


@pytest.fixture(scope="module")
def tiny():
  graphdef, state = nnx.split(init_model(CFG, seed=1))
  r = np.random.default_rng(0)
  prompt = r.integers(3, 90, CONTEXT).tolist()
  tokens = r.integers(3, 90, (1, STEPS))
  gen = Generator(CFG, graphdef, pad_to=16)
  logits, cache = gen.prefill(state, [prompt], gen.init_cache(1, MAX_LEN))
  return graphdef, state, prompt, tokens, np.asarray(logits), forced_logits(graphdef, state, cache, tokens)


def _method_cache(tiny, method, cfg=CFG, prepare=lambda cache: cache):
  graphdef, state, prompt, *_ = tiny
  gen = MethodGenerator(cfg, graphdef, method, pad_to=16)
  gen.context = CONTEXT
  return gen.prefill(state, [prompt], prepare(gen.init_cache(1, MAX_LEN)))


def _method_logits(tiny, name, budget, **options):
  graphdef, state, prompt, tokens, *_ = tiny
  logits, cache = _method_cache(tiny, make_method(name, budget=budget, **{**SMALL.get(name, {}), **options}))
  if name == "specontext":
    scfg, sg, sst = truncated(CFG, state, 1)
    _, small = Generator(scfg, sg, pad_to=16).prefill(sst, [prompt], init_probe_cache(scfg, 1, MAX_LEN))
    return logits, forced_logits_specontext(graphdef, sg, ((0, 0), (0, 2)), state, sst, tokens, cache, small)[0]
  return logits, forced_logits(graphdef, state, cache, tokens)


@pytest.mark.parametrize("name", [n for n in KV_METHODS.names() if n != "sink_kv"])
def test_full_budget_equals_dense(tiny, name):
  *_, dense_first, dense = tiny
  first, out = _method_logits(tiny, name, "all")
  np.testing.assert_allclose(first, dense_first, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(out, dense, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", [n for n in KV_METHODS.names() if n not in ("dense", "sink_kv")])
def test_small_budget_differs_from_dense(tiny, name):
  """A budget of 40 of ~80 tokens really drops keys (so the equality above is not vacuous)."""
  *_, dense = tiny
  _, out = _method_logits(tiny, name, 40)
  assert np.abs(out - dense).max() > 1e-4


def _explicit_slot_logits(tiny, key):
  """Reference for Sink-KV: the zero-value slot as a real key in every layer's attention (prefill and decode),
  computed by running the model on prompt+tokens without a cache with the slot concatenated."""
  graphdef, state, prompt, tokens, *_ = tiny
  seq = jnp.asarray(np.concatenate([prompt, tokens[0]]))[None]
  import lcjax.layers.attention as attn_mod

  orig = attn_mod.attention

  def with_slot(q, k, v, *, mask, impl):
    b, s, kh, h = k.shape
    slot = jnp.broadcast_to(key[None, None], (b, 1, kh, h))
    k2, v2 = jnp.concatenate([slot, k], 1), jnp.concatenate([jnp.zeros_like(slot), v], 1)
    pos = jnp.arange(-1, s, dtype=jnp.int32)[None]
    return orig(q, k2, v2, mask=mask.with_arrays(kv_positions=jnp.broadcast_to(pos, (b, s + 1))), impl="reference")

  attn_mod.attention = with_slot
  try:
    out, _ = forward(graphdef, state, seq)
  finally:
    attn_mod.attention = orig
  return np.asarray(out)[0, CONTEXT:CONTEXT + STEPS - 1]


def test_sink_kv_equals_explicit_slot_and_key_gets_gradient(tiny):
  graphdef, state, prompt, tokens, *_ = tiny
  key = jnp.asarray(np.random.default_rng(5).normal(size=(CFG.num_kv_heads, CFG.head_dim)), jnp.float32) * 2
  keys = jnp.broadcast_to(key, (CFG.num_layers,) + key.shape)
  _, cache = _method_cache(tiny, make_method("sink_kv", budget="all"), prepare=lambda c: with_sink_keys(c, keys))
  out = forced_logits(graphdef, state, cache, tokens)[:-1, 0]
  np.testing.assert_allclose(out, _explicit_slot_logits(tiny, key), atol=1e-5, rtol=1e-5)
  # The learnable key: d/dk_sink of the decode output = that of softmax over [slot, keys] with a zero value.
  r = np.random.default_rng(6)
  q = jnp.asarray(r.normal(size=(1, 1, 4, 8)), jnp.float32)
  out_w, lse_w = jnp.asarray(r.normal(size=(1, 1, 4, 8)), jnp.float32), jnp.asarray(r.normal(size=(1, 1, 4)))
  method = make_method("sink_kv", budget="all")
  f = lambda key: jnp.sum(method.finish(None, {"sink_key": key}, q, out_w, lse_w))  # noqa: E731
  g = lambda key: jnp.sum(  # noqa: E731
      out_w * (jnp.exp(lse_w) / (jnp.exp(lse_w) + jnp.exp(sink_scores(q, key))))[..., None])
  np.testing.assert_allclose(jax.grad(f)(key[:2]), jax.grad(g)(key[:2]), atol=1e-5, rtol=1e-5)
  assert float(jnp.abs(jax.grad(f)(key[:2])).max()) > 0


def test_longgen_decode_equals_model_with_its_trained_pattern(tiny):
  graphdef0, _, prompt, tokens, *_ = tiny
  method = make_method("longgen", budget=40, block_size=8, local_blocks=2, full_every=2)
  spec = _method_cache(tiny, method)[1].layers[0].spec
  cfg = method.model_config(CFG, spec)
  assert cfg.sparse_pattern == (8, 2, 5) and cfg.full_attention_layers == (1,)
  graphdef, state = nnx.split(init_model(cfg, seed=1))
  seq = jnp.asarray(np.concatenate([prompt, tokens[0]]))[None]
  full, _ = jax.jit(lambda s, t: forward(graphdef, s, t))(state, seq)
  gen = MethodGenerator(cfg, graphdef, method, pad_to=16)
  gen.context = CONTEXT
  first, cache = gen.prefill(state, [prompt], gen.init_cache(1, MAX_LEN))
  out = forced_logits(graphdef, state, cache, tokens)
  want = np.asarray(full)[0, CONTEXT - 1:CONTEXT + STEPS - 1]
  np.testing.assert_allclose(np.concatenate([np.asarray(first), out[:-1, 0]]), want, atol=1e-5, rtol=1e-5)
  dense_model, _ = forward(graphdef0, state, seq)  # same weights without the pattern: different numbers
  assert np.abs(np.asarray(dense_model)[0, CONTEXT:] - np.asarray(full)[0, CONTEXT:]).max() > 1e-3


def test_longgen_pattern_trains_through_ops_attention():
  """The pattern mask through the blockwise impl (training path) equals the reference, forward and gradient."""
  from lcjax.ops import MaskSpec, attention

  r = np.random.default_rng(0)
  q, k, v = (jnp.asarray(r.normal(size=s), jnp.float32) for s in ((1, 48, 4, 8), (1, 48, 2, 8), (1, 48, 2, 8)))
  mask = MaskSpec(causal=True, sparse_blocks=(4, 2, 3))
  f = lambda impl: lambda q, k, v: jnp.sum(jnp.sin(attention(q, k, v, mask=mask, impl=impl)))  # noqa: E731
  np.testing.assert_allclose(f("xla_blockwise")(q, k, v), f("reference")(q, k, v), rtol=1e-5)
  for a, b in zip(jax.grad(f("xla_blockwise"), (0, 1, 2))(q, k, v), jax.grad(f("reference"), (0, 1, 2))(q, k, v)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  dense = jnp.sum(jnp.sin(attention(q, k, v, mask=MaskSpec(causal=True), impl="reference")))
  assert abs(float(dense) - float(f("reference")(q, k, v))) > 1e-3
  with pytest.raises(ShapeError, match="sparse_blocks"):
    MaskSpec(sparse_blocks=(4, 0, 3))


def test_specontext_moves_only_the_selection_difference(tiny):
  graphdef, state, prompt, tokens, *_ = tiny
  _, cache = _method_cache(tiny, make_method("specontext", budget=24, local=4))
  scfg, sg, sst = truncated(CFG, state, 1)
  _, small = Generator(scfg, sg, pad_to=16).prefill(sst, [prompt], init_probe_cache(scfg, 1, MAX_LEN))
  _, moved = forced_logits_specontext(graphdef, sg, ((0, 1),), state, sst, tokens, cache, small)
  assert moved[0, 0] == 24 and (moved[1:, 0] < 24).all() and (moved[1:, 0] >= 1).all()


def test_bad_input_raises_clear_errors(tiny):
  with pytest.raises(ConfigError, match="larger than the context of 70 tokens; use budget='all'"):
    _method_cache(tiny, make_method("retrolm", budget=71))
  with pytest.raises(ConfigError, match=r"in \(0, 1\]"):
    _method_cache(tiny, make_method("squeezed", budget=1.5))
  with pytest.raises(UnknownNameError, match="unknown KV method 'retrolmm'.*Did you mean 'retrolm'"):
    make_method("retrolmm")
  with pytest.raises(ConfigError, match="unknown option.*page_sz.*accepted"):
    make_method("retrolm", page_sz=3)
  _, cache = _method_cache(tiny, make_method("retrolm", budget=32, block_size=16))
  other = dataclasses.replace(cache.layers[0], spec=dataclasses.replace(cache.layers[0].spec, num_kv_heads=4))
  with pytest.raises(ShapeError, match="built for B=1, K=4, H=8"):
    other.update(jnp.zeros((1, 1, 2, 8)), jnp.zeros((1, 1, 2, 8)), jnp.zeros((1, 1), jnp.int32))
  with pytest.raises(ConfigError, match="needs more than the 2 always-attended"):
    _method_logits(tiny, "retrolm", 16)


def test_fidelity_numbers():
  r = np.random.default_rng(0)
  a = r.normal(size=(4, 1, 10)).astype(np.float32)
  same = fidelity(a, a, a.argmax(-1))
  assert same["kl"] == pytest.approx(0, abs=1e-6) and same["agreement"] == 1.0
  b = a.copy()
  b[0, 0, a[0, 0].argmax()] -= 100.0  # step 0 now prefers another token
  p = jax.nn.softmax(a[0, 0])
  want = float(jnp.sum(p * (jax.nn.log_softmax(a[0, 0]) - jax.nn.log_softmax(b[0, 0])))) / 4
  got = fidelity(a, b, a.argmax(-1))
  assert got["agreement"] == 0.75 and got["kl"] == pytest.approx(want, rel=1e-4)
