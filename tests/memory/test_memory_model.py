"""The memory model against XLA's own accounting of compiled prefill/decode on the bundled model, and the
adaptive KV placement manager's choices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import CapacityError, ConfigError
from lcjax.inference import Generator
from lcjax.memory.kv_offload import PagedDecoder
from lcjax.memory.memory_model import (KVFootprint, decode_step_seconds, dense_footprint, param_count,
                                       placement_schedule, plan_kv_placement, predict_peak)
from lcjax.models.build import init_model
from tests.tiny import TINY


def _compiled_peak(compiled) -> float:
  """Peak bytes XLA assigns to one call: arguments + outputs - donated aliases + temporaries."""
  ma = compiled.memory_analysis()
  return (ma.argument_size_in_bytes + ma.output_size_in_bytes - ma.alias_size_in_bytes
          + ma.temp_size_in_bytes)


@pytest.mark.slow
def test_predicted_peak_within_15_percent_of_compiled_prefill_and_decode(smollm2):
  """Prefill at 1K, 4K and 8K tokens and a decode step over a 4K cache, fp32, batch 1: the prediction is within
  15% of the peak in XLA's memory analysis of the compiled call (the measured peak of the program's buffers;
  process RSS would add the Python/XLA runtime and the compiler's own memory)."""
  cfg, graphdef, state = smollm2.cfg, smollm2.graphdef, smollm2.state
  gen = Generator(cfg, graphdef)
  i32 = lambda *s: jax.ShapeDtypeStruct(s, jnp.int32)  # noqa: E731
  for t in (1024, 4096, 8192):
    cache = jax.eval_shape(lambda: gen.init_cache(1, t))
    compiled = gen._prefill.trace(state, i32(1, t), i32(1, t), i32(1), cache).lower().compile()
    measured, predicted = _compiled_peak(compiled), predict_peak(cfg, 1, t, "prefill").total
    assert abs(predicted / measured - 1) < 0.15, (t, predicted / 2**20, measured / 2**20)
  dec = PagedDecoder(cfg, graphdef)
  cache = jax.eval_shape(lambda: gen.init_cache(1, 4096))
  compiled = dec._step.trace(state, i32(1), i32(1), list(cache.layers), i32(1)).lower().compile()
  measured, predicted = _compiled_peak(compiled), predict_peak(cfg, 1, 4096, "decode").total
  assert abs(predicted / measured - 1) < 0.15, (predicted / 2**20, measured / 2**20)


def test_parameter_count_and_kv_bytes_match_the_model():
  for cfg in (TINY, TINY.replace(tie_embeddings=True, attention_bias=True)):
    model = init_model(cfg)
    from flax import nnx
    assert param_count(cfg) == sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  gen_cache = Generator(TINY, None).init_cache(2, 64)
  kv = sum(x.nbytes for x in jax.tree.leaves(gen_cache.layers))
  assert predict_peak(TINY, 2, 64, "decode").kv == kv
  assert predict_peak(TINY, 2, 64, "decode", device_layers=1).kv == kv / 2


GIB = 2**30
LLAMA8B = TINY.replace(vocab_size=128256, dim=4096, num_layers=32, num_heads=32, num_kv_heads=8, head_dim=128,
                       mlp_dim=14336, max_seq_len=131072, dtype="bfloat16", param_dtype="bfloat16")


def test_manager_keeps_the_most_layers_that_fit_and_offloads_the_rest():
  budget, ctx = 24 * GIB, 128 * 1024
  plan = plan_kv_placement(LLAMA8B, budget, ctx, hbm_bw=1e12, link_bw=25e9)
  assert 0 < plan.device_layers < 32 and plan.peak.total <= budget
  one_more = predict_peak(LLAMA8B, 1, ctx, "decode", device_layers=plan.device_layers + 1)
  assert one_more.total > budget  # maximal
  assert plan.step_s == pytest.approx(decode_step_seconds(LLAMA8B, 1, ctx, plan.device_layers,
                                                          dense_footprint(LLAMA8B), 1e12, 25e9))
  roomy = plan_kv_placement(LLAMA8B, 80 * GIB, ctx, hbm_bw=1e12, link_bw=25e9)
  assert roomy.device_layers == 32 and roomy.tokens_per_s > plan.tokens_per_s
  with pytest.raises(CapacityError, match="even with every layer's KV offloaded"):
    plan_kv_placement(LLAMA8B, 10 * GIB, ctx, hbm_bw=1e12, link_bw=25e9)


def test_sparse_methods_plug_in_through_their_footprint():
  dense = dense_footprint(LLAMA8B)
  sparse = KVFootprint(dense.bytes_per_token, budget_tokens=2048, reuse=0.9)
  ctx, budget = 128 * 1024, 24 * GIB
  d = plan_kv_placement(LLAMA8B, budget, ctx, hbm_bw=1e12, link_bw=25e9, batches=(1, 2, 4))
  s = plan_kv_placement(LLAMA8B, budget, ctx, hbm_bw=1e12, link_bw=25e9, kv=sparse, batches=(1, 2, 4))
  assert s.tokens_per_s > 5 * d.tokens_per_s
  with pytest.raises(ConfigError, match="reuse must be in"):
    KVFootprint(1.0, reuse=1.5)


def test_schedule_offloads_more_layers_as_the_sequence_grows():
  sched = placement_schedule(LLAMA8B, 24 * GIB, 128 * 1024, hbm_bw=1e12, link_bw=25e9, step=4096)
  contexts, layers = zip(*sched)
  assert layers[0] == 32 and list(layers) == sorted(layers, reverse=True) and len(sched) > 2
  assert np.all(np.diff(contexts) > 0)
