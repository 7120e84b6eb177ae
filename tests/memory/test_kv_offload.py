"""Decoding with the KV cache in host tiers equals device-resident decoding (bundled model), paged and streamed."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lcjax.errors import ShapeError
from lcjax.inference import Generator
from lcjax.kvcache.dense import DenseLayerKV, KVCache
from lcjax.memory.kv_offload import PagedDecoder, StreamedLayerKV, to_streamed
from lcjax.memory.tiers import Tier, memory_kind_of
from lcjax.models.build import init_model
from tests.tiny import TINY

# numpy pages bound to NUMA node 0: the `cxl` tier's mechanism on a machine without a CXL card
CXL_LIKE = Tier("cxl", "cxl", 1 << 34, 20e9, 20e9, 25e9, 20e-6, 250e-9, None, (0,))


def _prefill(gen, state, prompts, max_len):
  return gen.prefill(state, prompts, gen.init_cache(len(prompts), max_len))


@pytest.mark.slow
def test_bundled_model_decodes_identically_with_kv_in_host_tiers(smollm2):
  """All 30 layers offloaded: 15 paged into NUMA-bound host pages (the `cxl` tier's mechanism, bound to node 0 here)
  and 15 streamed from pinned_host. Greedy tokens are identical to device-resident decoding (which equals the
  Generator's own decode loop, checked on the tiny model below); logits agree to fp32 rounding accumulated over 30
  layers, |d| < 1e-4 on logits of magnitude ~16 (paged layers sum the softmax in their slots' key order over a
  different key count, so each layer's last bits differ; CI machines measured up to 4e-5)."""
  cfg, graphdef, state = smollm2.cfg, smollm2.graphdef, smollm2.state
  gen = Generator(cfg, graphdef, pad_to=64)
  prompt = smollm2.tokenizer.encode("The key to the castle is hidden under the third stone of the old bridge. " * 8)
  steps, max_len = 6, 256
  logits, cache = _prefill(gen, state, [prompt], max_len)
  dec = PagedDecoder(cfg, graphdef, tier=CXL_LIKE, page_size=32, num_slots=12)
  dev_tokens, dev_logits, _ = dec.decode(state, logits, cache, steps, paged_layers=[])

  logits, cache = _prefill(gen, state, [prompt], max_len)
  cache = dataclasses.replace(cache, layers=tuple(
      to_streamed(l, "pinned_host") if i >= 15 else l for i, l in enumerate(cache.layers)))
  assert memory_kind_of(cache.layers[15].k) == "pinned_host"
  first = dec.offload(cache, [0])[1][0][0]
  assert {memory_kind_of(x) for x in jax.tree.leaves(first.pages)} == {"numpy"}
  tokens, host_logits, stats = dec.decode(state, logits, cache, steps, paged_layers=range(15))
  np.testing.assert_array_equal(tokens, dev_tokens)
  np.testing.assert_allclose(host_logits, dev_logits, atol=1e-4, rtol=0)
  pages = -(-len(prompt) // 32)
  assert stats[0].loaded == 15 * pages and stats[1].loaded == 0  # afterwards only new write pages move


@pytest.fixture(scope="module")
def tiny():
  graphdef, state = nnx.split(init_model(TINY, seed=1))
  return graphdef, state, Generator(TINY, graphdef, pad_to=16)


def _sink_and_recent(layer, positions, page_size):
  last = int(positions.max()) // page_size
  return sorted({0, max(0, last - 1), last})


@dataclasses.dataclass(frozen=True)
class _SelectedDense(DenseLayerKV):
  """Independent reference: the dense cache with only the sink page and the two latest pages visible."""

  def update(self, k, v, positions):
    new = super().update(k, v, positions)
    return _SelectedDense(new.k, new.v)

  def attend(self, q, mask, **kwargs):
    c, s = 8, self.k.shape[2]
    last = mask.q_positions[:, :1] // c  # [B, 1]
    page = jnp.arange(s)[None, :] // c
    seen = (page == 0) | (page == last) | (page == last - 1)
    seg = jnp.where(seen, 0, 1).astype(jnp.int32)
    masked = mask.with_arrays(q_segment_ids=jnp.zeros_like(mask.q_positions), kv_segment_ids=seg)
    return super().attend(q, masked, **kwargs)


jax.tree_util.register_dataclass(_SelectedDense, data_fields=["k", "v"], meta_fields=[])


def test_sparse_selection_with_evictions_equals_masked_dense_reference(tiny):
  graphdef, state, gen = tiny
  prompts = [list(range(3, 40))]
  steps = 20
  logits, cache = _prefill(gen, state, prompts, 96)
  dec = PagedDecoder(TINY, graphdef, page_size=8, num_slots=3, select=_sink_and_recent)
  tokens, paged_logits, stats = dec.decode(state, logits, cache, steps, paged_layers=[0, 1])
  assert sum(s.evicted for s in stats) > 0 and sum(s.written_back for s in stats) > 0

  logits, cache = _prefill(gen, state, prompts, 96)
  cache = KVCache(tuple(_SelectedDense(l.k, l.v) for l in cache.layers), cache.lengths)
  ref = PagedDecoder(TINY, graphdef)
  ref_tokens, ref_logits, _ = ref.decode(state, logits, cache, steps, paged_layers=[])
  np.testing.assert_array_equal(tokens, ref_tokens)
  np.testing.assert_allclose(paged_logits, ref_logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("overlap", [True, False])
def test_overlap_does_not_change_results(tiny, overlap):
  graphdef, state, gen = tiny
  logits, cache = _prefill(gen, state, [[5, 6, 7] * 9, [9] * 20], 64)
  dec = PagedDecoder(TINY, graphdef, page_size=8, num_slots=8, overlap=overlap)
  tokens, lg, _ = dec.decode(state, logits, cache, 6, paged_layers=[1])
  ref = gen.generate(state, [[5, 6, 7] * 9, [9] * 20], max_new_tokens=6, stop_ids=[])
  assert tokens.tolist() == ref.tokens


def test_capacity_error_when_the_selection_exceeds_the_working_set(tiny):
  graphdef, state, gen = tiny
  logits, cache = _prefill(gen, state, [list(range(3, 40))], 64)
  from lcjax.errors import CapacityError
  with pytest.raises(CapacityError, match="pages requested but the working set has 2 slots"):
    PagedDecoder(TINY, graphdef, page_size=8, num_slots=2).decode(state, logits, cache, 2, paged_layers=[0])


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
def test_streamed_layers_lower_with_host_placement(tiny, platform):
  graphdef, state, gen = tiny
  _, cache = _prefill(gen, state, [[1, 2, 3]], 32)
  layers = (to_streamed(cache.layers[0]), cache.layers[1])
  dec = PagedDecoder(TINY, graphdef)
  args = (state, jnp.ones((1,), jnp.int32), jnp.full((1,), 3, jnp.int32), list(layers), cache.lengths)
  text = dec._step.trace(*args).lower(lowering_platforms=(platform,)).as_text()
  assert "annotate_device_placement" in text
  assert '_xla_buffer_placement = "pinned_host"' in text and '_xla_buffer_placement = "device"' in text


def test_streamed_layer_stays_in_host_memory_across_steps(tiny):
  graphdef, state, gen = tiny
  _, cache = _prefill(gen, state, [[1, 2, 3]], 16)
  layers = [to_streamed(cache.layers[0]), cache.layers[1]]
  _, out = PagedDecoder(TINY, graphdef)._step(state, jnp.ones((1,), jnp.int32), jnp.full((1,), 3, jnp.int32),
                                              layers, cache.lengths)
  assert memory_kind_of(out[0].k) == "pinned_host" and memory_kind_of(out[1].k) == "device"
  assert float(jnp.abs(out[0].k[0, :, 3]).sum()) > 0  # the new token was written into the host cache


def test_streamed_layer_needs_a_memory_kind(tiny):
  _, _, gen = tiny
  _, cache = _prefill(gen, tiny[1], [[1, 2]], 16)
  with pytest.raises(ShapeError, match="needs a JAX host memory kind"):
    to_streamed(cache.layers[0], CXL_LIKE)
  assert isinstance(to_streamed(cache.layers[0], "unpinned_host"), StreamedLayerKV)
