"""Recipes: UtK knots untie exactly (from the recorded order and from the trace), E^2-LLM scale / offset
distributions match the config, ProLong / ABF sections carry the papers' mixtures and schedules."""

import grain
import numpy as np
import pytest

from lcjax.config import RopeConfig
from lcjax.data.pipeline import DataConfig, build_pipeline
from lcjax.errors import ConfigError
from lcjax.layers.rope import rope_frequencies
from lcjax.recipes import abf, e2llm, prolong
from lcjax.recipes.untie_knots import KnotConfig, knot, untie, untie_from_trace
from lcjax.training.config import train_config

KNOT = KnotConfig(chunk_token=3, trace_token=250, slot_base=200, max_slots=48, docs_per_knot=4, min_chunk_len=3,
                  max_chunk_len=9)


def _docs(rng, n=4):
  return [{"tokens": rng.integers(4, 190, int(rng.integers(5, 40))).astype(np.int32)} for _ in range(n)]


def test_untie_reconstructs_documents_exactly():
  rng = np.random.default_rng(0)
  for trial in range(20):
    docs = _docs(rng)
    out = knot(docs, KNOT, np.random.default_rng(trial))
    for got, want in zip(untie(out["tokens"], out["order"], len(docs)), docs):
      np.testing.assert_array_equal(got, want["tokens"])
    traced = untie_from_trace(out["tokens"], KNOT)  # the tracing target alone also unties the knot
    first_slot = [int(np.min(np.nonzero(out["order"][:, 0] == d)[0])) for d in range(len(docs))]
    for got, d in zip(traced, np.argsort(first_slot)):
      np.testing.assert_array_equal(got, docs[d]["tokens"])
    assert len(out["tokens"]) == len(out["loss_mask"])


def test_knot_shuffles_chunks_across_documents_and_masks_boundaries():
  rng = np.random.default_rng(1)
  out = knot(_docs(rng), KNOT, np.random.default_rng(5))
  order = out["order"]
  assert len(set(order[:, 0].tolist())) == 4 and len(order) > 8
  assert np.any(np.diff(order[:, 0]) != 0)  # documents interleave
  starts = order[:, 2]
  assert np.all(out["tokens"][starts - 1] == KNOT.chunk_token)
  assert np.all(out["loss_mask"][starts - 1] == 0) and np.all(out["loss_mask"][starts] == 0)
  trace_at = int(np.nonzero(out["tokens"] == KNOT.trace_token)[0][0])
  assert out["loss_mask"][trace_at + 1:].min() == 1.0  # the untying objective is trained


def test_untie_knots_grain_stage_is_deterministic():
  cfg = DataConfig(sources=[{"format": "synthetic", "options": {"length": 30, "vocab_size": 190, "num_pairs": 2}}],
                   seq_len=64, batch_size=2, augment=("untie_knots",),
                   augment_options={"untie_knots": {**KNOT.__dict__}})
  a, b = next(iter(build_pipeline(cfg))), next(iter(build_pipeline(cfg)))
  np.testing.assert_array_equal(a["tokens"], b["tokens"])
  assert np.sum(a["tokens"] == KNOT.chunk_token) >= 4
  with pytest.raises(ConfigError, match="more than max_slots"):
    knot(_docs(np.random.default_rng(2), 8), KnotConfig(3, 250, 200, max_slots=8, min_chunk_len=2,
                                                       max_chunk_len=3), np.random.default_rng(0))


def test_e2llm_scale_and_offset_distributions_match_config():
  cfg = e2llm.E2Config(scales=(1.0, 2.0, 4.0), offset=True)
  rng = np.random.default_rng(0)
  draws = [e2llm.sample_augmentation(cfg, 100, rng) for _ in range(6000)]
  scales = np.asarray([g for g, _ in draws])
  counts = {g: np.mean(scales == g) for g in cfg.scales}
  assert all(abs(c - 1 / 3) < 0.03 for c in counts.values()) and set(scales) == {1.0, 2.0, 4.0}
  for g in cfg.scales:
    offsets = np.asarray([t for s, t in draws if s == g])
    hi = int((g - 1) * 100)
    assert offsets.min() == 0 and offsets.max() == hi if g > 1 else offsets.max() == 0
    assert abs(offsets.mean() - hi / 2) < 0.08 * max(hi, 1)  # uniform on {0..(g-1)R}
    assert np.all((offsets + 99) / g < 100)  # interpolated positions stay inside the trained range
  row = {"tokens": np.zeros(8, np.int32), "positions": np.arange(8, dtype=np.int32)}
  out = e2llm.augment_row(row, e2llm.E2Config(scales=(3.0,)), np.random.default_rng(1))
  assert out["rope_scale"] == 3.0 and np.all(np.diff(out["positions"]) == 1)
  with pytest.raises(ConfigError, match="scales"):
    e2llm.E2Config(scales=(0.5,))
  assert e2llm.inference_rope(RopeConfig(), 256, 1024) == RopeConfig(scaling="linear", factor=4.0)


def test_e2llm_rope_scale_equals_position_interpolation():
  import jax.numpy as jnp
  from lcjax.models.build import init_model
  from tests.tiny import TINY

  tokens = jnp.asarray(np.random.default_rng(0).integers(0, TINY.vocab_size, (2, 16)), jnp.int32)
  scaled, _ = init_model(TINY)(tokens, rope_scale=jnp.asarray([4.0, 4.0]))
  pi, _ = init_model(TINY.replace(rope=RopeConfig(scaling="linear", factor=4.0)))(tokens)
  np.testing.assert_allclose(scaled, pi, rtol=1e-5, atol=1e-5)


def test_prolong_and_abf_sections():
  weights = prolong.mixture_weights()
  assert sum(weights.values()) == pytest.approx(1.0) and weights["books"] == 0.30
  assert weights["fineweb"] == pytest.approx(0.37 * 0.25)
  src = [{"name": "books", "format": "text", "path": "x", "weight": 0.3}]
  sft = {"name": "sft", "format": "jsonl", "path": "y", "prompt_field": "q", "response_field": "a"}
  section = prolong.prolong_train({"vocab_size": 260, "dim": 32, "num_layers": 1, "num_heads": 2,
                                   "num_kv_heads": 2, "head_dim": 16, "mlp_dim": 64}, src, sft,
                                  stage_lengths=[64, 256], stage_steps=[10, 5], stage_thetas=[8e6, 1.28e8],
                                  batch_size=2, sft_steps=3, sft_seq_len=32)
  cfg = train_config(section)
  assert [s.start for s in cfg.stages] == [0, 10, 15] and cfg.steps == 18
  assert [s.seq_len for s in cfg.stages] == [64, 256, 32] and cfg.stages[1].rope.theta == 1.28e8
  assert cfg.stages[2].lr_scale == pytest.approx(2.0) and not cfg.data.split_docs
  a = train_config(abf.abf_train({"vocab_size": 64, "dim": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2,
                                  "head_dim": 16, "mlp_dim": 64}, src, lengths=[64, 128], steps=[4, 4],
                                 batch_size=2))
  inv, _ = rope_frequencies(a.model.rope, 16, 128)
  np.testing.assert_allclose(inv, 1.0 / 500_000.0 ** (np.arange(0, 16, 2) / 16))
