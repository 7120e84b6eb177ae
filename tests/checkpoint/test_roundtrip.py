"""HF safetensors export/import and orbax save/restore are bit-exact; mismatches raise CheckpointError."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from lcjax.checkpoint import load_pretrained, restore_params, save_params, save_pretrained_hf
from lcjax.checkpoint.pretrained import Pretrained
from lcjax.checkpoint.safetensors_io import load_hf, save_hf
from lcjax.errors import CheckpointError
from lcjax.models.build import abstract_model, init_model, params_of
from tests.tiny import TINY, TINY_TIED


@pytest.mark.parametrize("cfg", [TINY, TINY_TIED, TINY.replace(attention_bias=True)], ids=["untied", "tied", "bias"])
def test_safetensors_round_trip_bit_exact(tmp_path, cfg):
  params = params_of(nnx.state(init_model(cfg, seed=3)))
  save_hf(str(tmp_path), cfg, params)
  cfg2, params2 = load_hf(str(tmp_path))
  assert cfg2 == cfg
  jax.tree.map(np.testing.assert_array_equal, params2, params)


def test_hf_names_and_layouts(tmp_path):
  params = params_of(nnx.state(init_model(TINY, seed=3)))
  save_hf(str(tmp_path), TINY, params)
  from safetensors.numpy import load_file

  tensors = load_file(str(tmp_path / "model.safetensors"))
  assert tensors["model.layers.1.self_attn.q_proj.weight"].shape == (4 * 8, 32)  # [N*H, D]
  assert tensors["model.layers.0.self_attn.k_proj.weight"].shape == (2 * 8, 32)
  assert tensors["model.layers.0.mlp.down_proj.weight"].shape == (32, 64)
  assert tensors["lm_head.weight"].shape == (96, 32)
  np.testing.assert_array_equal(tensors["model.layers.0.self_attn.o_proj.weight"],
                                params["layers"][0]["attn"]["wo"].reshape(32, 32).T)
  hf_cfg = json.loads((tmp_path / "config.json").read_text())
  assert hf_cfg["num_key_value_heads"] == 2 and hf_cfg["architectures"] == ["LlamaForCausalLM"]


def test_bundled_model_hf_export_round_trip(tmp_path, smollm2):
  save_pretrained_hf(str(tmp_path), smollm2)
  back = load_pretrained(str(tmp_path))
  jax.tree.map(np.testing.assert_array_equal, params_of(back.state), params_of(smollm2.state))
  text = "Round trip: <|im_start|>user ünïcode 123<|im_end|>"
  assert back.tokenizer.encode(text) == smollm2.tokenizer.encode(text)
  assert back.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}]) == \
      smollm2.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}])


def test_safetensors_errors(tmp_path):
  with pytest.raises(CheckpointError, match="config not found"):
    load_hf(str(tmp_path))
  params = params_of(nnx.state(init_model(TINY, seed=3)))
  save_hf(str(tmp_path), TINY, params)
  cfg = json.loads((tmp_path / "config.json").read_text())
  cfg["intermediate_size"] = 80  # tensors no longer fit
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(CheckpointError, match="mlp.gate_proj.weight' has shape \\(64, 32\\)"):
    load_hf(str(tmp_path))
  save_hf(str(tmp_path), TINY, params)
  data = (tmp_path / "model.safetensors").read_bytes()
  (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
  with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
    load_hf(str(tmp_path))
  with pytest.raises(CheckpointError, match="no model at"):
    load_pretrained(str(tmp_path / "missing"))


def test_orbax_round_trip_bit_exact(tmp_path):
  state = nnx.state(init_model(TINY, seed=5))
  save_params(str(tmp_path / "ckpt"), state)
  _, abstract = abstract_model(TINY)
  restored = restore_params(str(tmp_path / "ckpt"), abstract)
  jax.tree.map(np.testing.assert_array_equal, params_of(restored), params_of(state))


def test_orbax_mismatch_and_missing(tmp_path):
  save_params(str(tmp_path / "ckpt"), nnx.state(init_model(TINY, seed=5)))
  _, other = abstract_model(TINY.replace(mlp_dim=48))
  with pytest.raises(CheckpointError, match=r"parameter layers\.0\.mlp\.\w+ was saved with shape \(\d+, \d+\), the model expects"):
    restore_params(str(tmp_path / "ckpt"), other)
  with pytest.raises(CheckpointError, match="not found"):
    restore_params(str(tmp_path / "none"), other)


def test_state_from_params_rejects_wrong_shapes():
  from lcjax.models.build import state_from_params

  params = params_of(nnx.state(init_model(TINY, seed=3)))
  params["layers"][1]["attn"]["wk"] = np.zeros((32, 2, 4), np.float32)
  with pytest.raises(CheckpointError, match="layers.1.attn.wk has shape \\(32, 2, 4\\).*\\(32, 2, 8\\)"):
    state_from_params(TINY, params, "test")
  del params["norm"]
  with pytest.raises(CheckpointError, match="missing \\['norm.scale'\\]"):
    state_from_params(TINY, params, "test")
  assert Pretrained  # re-exported type
