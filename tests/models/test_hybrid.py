"""Linear-attention hybrids: layout, hybrid == Llama when all-softmax, recurrent-cache decode == full forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax.sharding import PartitionSpec as P

from lcjax.config import MeshConfig, ModelConfig
from lcjax.errors import ConfigError, UnknownNameError
from lcjax.checkpoint import load_pretrained
from lcjax.inference import Generator
from lcjax.kvcache.recurrent import cache_bytes, init_hybrid_cache
from lcjax.models.build import init_model
from lcjax.models.hybrid import hybrid, layer_types, minimax_config
from lcjax.sharding import cache_shardings, create_mesh, place
from lcjax.training.loop import export_model

CFG = ModelConfig(vocab_size=64, dim=32, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64,
                  max_seq_len=256, eos_token_ids=())


def test_layer_types_put_softmax_every_kth_layer():
  types = layer_types(80)
  assert {i for i, t in enumerate(types) if t == "attention"} == set(range(7, 80, 8))
  assert types.count("lightning") == 70
  assert hybrid(CFG, 4).layer_types == ("lightning",) * 3 + ("attention",)
  mm = minimax_config(CFG.replace(num_layers=80), 8)
  assert mm.postnorm and mm.residual_alpha == pytest.approx(3.5565588200778455)


def _forward(cfg, toks, seed=0):
  graphdef, state = nnx.split(init_model(cfg, seed))
  return jax.jit(lambda s, t: nnx.merge(graphdef, s)(t)[0])(state, toks)


def test_all_softmax_hybrid_equals_llama():
  toks = jax.random.randint(jax.random.PRNGKey(1), (2, 12), 0, 64)
  want = _forward(CFG, toks)
  got = _forward(CFG.replace(architecture="hybrid", layer_types=("attention",) * 4), toks)
  np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.fixture(scope="module", params=["hybrid", "minimax"])
def model(request):
  cfg = hybrid(CFG, 4) if request.param == "hybrid" else minimax_config(CFG, 4)
  return cfg, nnx.split(init_model(cfg, seed=3))


def test_decode_with_the_recurrent_cache_equals_the_full_forward_at_every_step(model):
  cfg, (graphdef, state) = model
  toks = jax.random.randint(jax.random.PRNGKey(2), (2, 24), 0, 64)
  full = jax.jit(lambda s, t: nnx.merge(graphdef, s)(t)[0])(state, toks)
  gen = Generator(cfg, graphdef, pad_to=8, prefill_chunk=8)
  lengths = [5, 13]                                # right padding to 16, two prefill chunks
  logits, cache = gen.prefill(state, [toks[0, :5].tolist(), toks[1, :13].tolist()], gen.init_cache(2, 32))
  np.testing.assert_allclose(logits, full[jnp.arange(2), jnp.asarray(lengths) - 1], atol=2e-5)

  @jax.jit
  def step(state, token, cache):
    out, cache = nnx.merge(graphdef, state)(token[:, None], cache.lengths[:, None], cache=cache)
    return out[:, 0], cache.__class__(**{**vars(cache), "lengths": cache.lengths + 1})

  for i in range(8):
    pos = jnp.asarray(lengths) + i
    logits, cache = step(state, toks[jnp.arange(2), pos], cache)
    np.testing.assert_allclose(logits, full[jnp.arange(2), pos], atol=2e-5)


def test_a_trained_hybrid_loads_and_generates_and_cache_bytes_are_constant_in_t(model, tmp_path):
  cfg, (graphdef, state) = model
  if cfg.architecture != "hybrid":
    pytest.skip("one flavour is enough for loading and generation")
  export_model(str(tmp_path), cfg, state)        # what training writes (lcjax generate --model DIR reads it)
  loaded = load_pretrained(str(tmp_path))
  assert loaded.cfg == cfg
  prompts = [[1, 2, 3], [4, 5, 6, 7, 8]]
  result = Generator(cfg, graphdef, pad_to=8).generate(state, prompts, max_new_tokens=4)
  again = Generator(loaded.cfg, loaded.graphdef, pad_to=8).generate(loaded.state, prompts, max_new_tokens=4)
  assert [len(t) for t in result.tokens] == [4, 4] and again.tokens == result.tokens
  short, long = (cache_bytes(init_hybrid_cache(cfg, 2, n)) for n in (64, 4096))
  assert short["lightning"] == long["lightning"] == 3 * (2 * 4 * 8 * 8 * 4 + 2 * 4)  # fp32 [B, N, H, H], limit [B]
  assert long["attention"] == 64 * short["attention"]


def test_every_parameter_and_cache_leaf_has_logical_axis_names(model):
  cfg, (_, state) = model
  specs = jax.tree.leaves(nnx.get_partition_spec(state), is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
  assert specs and all(all(name is not None for name in spec) for spec in specs)
  mesh = create_mesh(MeshConfig(data=2, fsdp=1, context=2, tensor=2))
  cache = init_hybrid_cache(cfg, 2, 64)
  shardings = cache_shardings(cache, mesh, "decode")
  placed = place(cache, shardings)
  assert placed.layers[0].state.sharding.spec == P("data", "tensor")  # batch, heads; never the H x H dims
  assert placed.layers[3].k.sharding.spec == P("data", "tensor", "context")


def test_learnable_decay_gets_gradients():
  cfg = hybrid(CFG, 4).replace(decay_schedule="learnable")
  graphdef, state = nnx.split(init_model(cfg))
  toks = jax.random.randint(jax.random.PRNGKey(1), (1, 16), 0, 64)
  grads = jax.jit(jax.grad(lambda s: jnp.sum(nnx.merge(graphdef, s)(toks)[0] ** 2)))(state)
  g = grads["layers"][0]["attn"]["log_rate"][...]
  assert g.shape == (4,) and np.all(np.isfinite(g)) and np.any(g != 0)


def test_bad_configs_raise():
  with pytest.raises(ConfigError, match="layer_types has 2 entries"):
    CFG.replace(layer_types=("lightning", "attention"))
  with pytest.raises(UnknownNameError, match="block type 'mamba'"):
    init_model(CFG.replace(architecture="hybrid", layer_types=("mamba",) * 4))
  with pytest.raises(UnknownNameError, match="decay schedule 'tnl'"):
    init_model(hybrid(CFG, 4).replace(decay_schedule="tnl"))
