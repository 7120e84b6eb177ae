"""int8 KV cache: per-token quantisation within half a step; decode logits close to the fp32 cache's; composes with
a sparse KV method (RetroLM pages) and equals the int8 dense cache when the budget covers everything."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.inference import Generator
from lcjax.inference.kv_method import MethodGenerator, forced_logits
from lcjax.kvcache import make_method
from lcjax.kvcache.quantized import Int8LayerKV, Int8MethodLayerKV, dequantize_kv, kv_bytes, quantize_kv
from tests.memory.test_method_offload import CONTEXT, MAX_LEN, tiny  # noqa: F401  (the shared tiny fixture)
from tests.tiny import TINY


def test_per_token_quantisation_is_within_half_a_step():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 3, 16)) * jnp.arange(1, 17)
  x = x.at[0, 0, 0].set(0.0)
  q, s = quantize_kv(x)
  assert q.dtype == jnp.int8 and s.shape == (2, 5, 3, 1)
  err = jnp.abs(dequantize_kv(q, s) - x)
  assert bool(jnp.all(err <= s / 2 * (1 + 1e-6))) and bool(jnp.all(dequantize_kv(q, s)[0, 0, 0] == 0))


def _forced(tiny, cache_dtype, method=None):
  graphdef, state, prompt, tokens = tiny
  gen = (Generator(TINY, graphdef, pad_to=16, cache_dtype=cache_dtype) if method is None else
         MethodGenerator(TINY, graphdef, method, pad_to=16, cache_dtype=cache_dtype))
  gen.context = CONTEXT
  _, cache = gen.prefill(state, [prompt], gen.init_cache(1, MAX_LEN))
  return cache, forced_logits(graphdef, state, cache, tokens)


def test_int8_cache_decode_is_close_to_fp32_and_composes_with_a_sparse_method(tiny):
  fp_cache, fp = _forced(tiny, jnp.float32)
  q_cache, q8 = _forced(tiny, "int8")
  assert isinstance(q_cache.layers[0], Int8LayerKV)
  h = TINY.head_dim
  assert kv_bytes(q_cache) * 4 * h == kv_bytes(fp_cache) * (h + 4)  # H + 4 bytes per token and head vs 4H
  scale = np.abs(fp).max()
  assert 0 < np.abs(q8 - fp).max() <= 0.02 * scale  # stated bound: 2% of the largest logit
  full_cache, full = _forced(tiny, "int8", make_method("retrolm", budget="all", block_size=16))
  assert isinstance(full_cache.layers[0], Int8MethodLayerKV)
  np.testing.assert_allclose(full, q8, atol=1e-5 * scale)  # full budget == the int8 dense cache
  _, sparse_fp = _forced(tiny, jnp.float32, make_method("retrolm", budget=48, block_size=16))
  _, sparse_q8 = _forced(tiny, "int8", make_method("retrolm", budget=48, block_size=16))
  assert np.abs(sparse_q8 - sparse_fp).max() <= 0.02 * scale
