"""GGUF import: dequantisation, the Q/K un-permutation, metadata, and errors on bad files."""

import os

import gguf
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gguf import quants

from lcjax.checkpoint.gguf import config_from_gguf, params_from_gguf, read_gguf, unpermute_rows
from lcjax.checkpoint.gguf_quants import SUPPORTED_TYPES, dequantize
from lcjax.checkpoint.hf_layout import params_to_hf
from lcjax.checkpoint.pretrained import load_pretrained
from lcjax.errors import CheckpointError
from lcjax.models.build import init_model, params_of
from lcjax.models.llama import forward
from tests.tiny import TINY

Q = gguf.GGMLQuantizationType


@pytest.mark.parametrize("qtype", ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_dequantize_matches_gguf_reference(qtype):
  x = np.random.default_rng(0).normal(size=(6, 64)).astype(np.float32)
  raw = quants.quantize(x, Q[qtype])
  ours = dequantize(raw, qtype, x.shape)
  np.testing.assert_array_equal(ours, quants.dequantize(raw, Q[qtype]).reshape(x.shape))
  if qtype.startswith("Q4"):  # 4-bit: error below half a step of the block's range / 15
    assert np.max(np.abs(ours - x)) < (x.max() - x.min()) / 15


def test_dequantize_errors():
  with pytest.raises(CheckpointError, match="Q6_K is not supported; supported: F32, F16, BF16"):
    dequantize(np.zeros(210, np.uint8), "Q6_K", (256,))
  with pytest.raises(CheckpointError, match="needs 40 bytes.*has 39"):
    dequantize(np.zeros(39, np.uint8), "Q4_1", (64,))
  assert set(SUPPORTED_TYPES) >= {"F32", "Q4_1", "Q8_0"}


def _llamacpp_permute(w, heads):
  """llama.cpp's convert_hf_to_gguf permutation (the one the importer undoes)."""
  return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_unpermute_inverts_llamacpp_permutation():
  w = np.arange(6 * 8 * 5, dtype=np.float32).reshape(6 * 8, 5)
  np.testing.assert_array_equal(unpermute_rows(_llamacpp_permute(w, 6), 6), w)


def test_bundled_file_metadata(smollm2_path):
  g = read_gguf(smollm2_path)
  cfg = config_from_gguf(g)
  assert (cfg.vocab_size, cfg.dim, cfg.num_layers, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim) == (
      49152, 576, 30, 9, 3, 64, 1536)
  assert cfg.rope.theta == 100000.0 and cfg.max_seq_len == 8192 and cfg.tie_embeddings
  assert {g.tensors[n][0] for n in g.tensors} == {"F32", "Q4_1", "Q8_0"}
  assert 2 in cfg.eos_token_ids  # <|im_end|>


def _write_tiny_gguf(path, cfg, params, qtype="F32", truncate_by=0):
  """Writes `params` the way llama.cpp's converter does (HF names -> GGUF names, Q/K permuted)."""
  writer = gguf.GGUFWriter(path, "llama")
  writer.add_block_count(cfg.num_layers)
  writer.add_context_length(cfg.max_seq_len)
  writer.add_embedding_length(cfg.dim)
  writer.add_feed_forward_length(cfg.mlp_dim)
  writer.add_head_count(cfg.num_heads)
  writer.add_head_count_kv(cfg.num_kv_heads)
  writer.add_rope_freq_base(cfg.rope.theta)
  writer.add_layer_norm_rms_eps(cfg.norm_eps)
  writer.add_vocab_size(cfg.vocab_size)
  writer.add_uint32("tokenizer.ggml.eos_token_id", 2)
  names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
  layer_names = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
                 "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
                 "self_attn.o_proj.weight": "attn_output.weight",
                 "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
                 "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
  for hf, w in params_to_hf(cfg, params).items():
    if hf.startswith("model.layers."):
      _, _, i, rest = hf.split(".", 3)
      name = f"blk.{i}.{layer_names[rest]}"
    else:
      name = names[hf]
    if name.endswith("attn_q.weight"):
      w = _llamacpp_permute(w, cfg.num_heads)
    elif name.endswith("attn_k.weight"):
      w = _llamacpp_permute(w, cfg.num_kv_heads)
    w = w.astype(np.float32)
    if qtype != "F32" and w.ndim == 2:
      writer.add_tensor(name, quants.quantize(w, Q[qtype]), raw_dtype=Q[qtype])
    else:
      writer.add_tensor(name, w)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  if truncate_by:
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) - truncate_by)


@pytest.mark.parametrize("qtype", ["F32", "Q8_0"])
def test_tiny_gguf_round_trip(tmp_path, qtype):
  """A model written as llama.cpp would write it imports back to the same logits."""
  model = init_model(TINY, seed=1)
  params = params_of(__import__("flax").nnx.state(model))
  path = str(tmp_path / "tiny.gguf")
  _write_tiny_gguf(path, TINY, params, qtype)
  g = read_gguf(path)
  cfg = config_from_gguf(g)
  assert (cfg.num_heads, cfg.num_kv_heads, cfg.tie_embeddings) == (4, 2, False)
  loaded = params_from_gguf(g, cfg)
  if qtype == "F32":
    jax.tree.map(np.testing.assert_array_equal, loaded, params)
  pretrained = load_pretrained(path)
  tokens = jnp.arange(20)[None] % TINY.vocab_size
  graphdef, state = __import__("flax").nnx.split(model)
  want = forward(graphdef, state, tokens)[0]
  got = forward(pretrained.graphdef, pretrained.state, tokens)[0]
  np.testing.assert_allclose(got, want, atol=1e-6 if qtype == "F32" else 2e-2)


def test_bad_gguf_files(tmp_path):
  with pytest.raises(CheckpointError, match="GGUF file not found: .*nope.gguf"):
    read_gguf(str(tmp_path / "nope.gguf"))
  junk = tmp_path / "junk.gguf"
  junk.write_bytes(b"not a gguf file at all" * 10)
  with pytest.raises(CheckpointError, match="junk.gguf: not a readable GGUF file"):
    read_gguf(str(junk))
  model = init_model(TINY, seed=1)
  params = params_of(__import__("flax").nnx.state(model))
  path = str(tmp_path / "cut.gguf")
  _write_tiny_gguf(path, TINY, params, truncate_by=100)
  with pytest.raises(CheckpointError, match="cut.gguf.*(truncated|corrupt)"):
    g = read_gguf(path)
    params_from_gguf(g, config_from_gguf(g))


def test_truncated_bundled_header(tmp_path, smollm2_path):
  cut = tmp_path / "head.gguf"
  with open(smollm2_path, "rb") as f:
    cut.write_bytes(f.read(300_000))  # inside the tokenizer metadata
  with pytest.raises(CheckpointError, match="head.gguf"):
    read_gguf(str(cut))
