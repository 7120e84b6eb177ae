"""Issue 25: hostile and damaged model files fail fast with CheckpointError, never hang or load garbage.

Byte offsets are those of the bundled SmolLM2-135M-Instruct Q4_1 GGUF, whose header is copied once per module
(with its tensor data); each test patches bytes of that copy and restores them.
"""

import contextlib
import json
import os
import shutil
import struct
import time

import jax
import numpy as np
import pytest
from flax import nnx

from lcjax.checkpoint.gguf import GGUFFile, config_from_gguf, params_from_gguf, read_gguf, tokenizer_data
from lcjax.checkpoint.pretrained import load_pretrained
from lcjax.checkpoint.safetensors_io import load_hf, save_hf
from lcjax.data.tokenizer import Tokenizer
from lcjax.errors import CheckpointError
from lcjax.models.build import init_model, params_of
from tests.tiny import TINY


@pytest.fixture(scope="module")
def bundled_copy(tmp_path_factory, smollm2_path):
  path = str(tmp_path_factory.mktemp("gguf") / "copy.gguf")
  shutil.copyfile(smollm2_path, path)
  return path


@pytest.fixture(scope="module")
def bundled_header(smollm2_path):
  g = read_gguf(smollm2_path)
  return g


@contextlib.contextmanager
def patched(path, offset, data: bytes):
  with open(path, "r+b") as f:
    f.seek(offset)
    old = f.read(len(data))
    f.seek(offset)
    f.write(data)
  try:
    yield
  finally:
    with open(path, "r+b") as f:
      f.seek(offset)
      f.write(old)


def _header_bytes(path, n=2_000_000):
  with open(path, "rb") as f:
    return f.read(n)


def _tensor_info_pos(path, name: str):
  """Byte positions of a tensor info's (dims, type, offset) fields."""
  head = _header_bytes(path)
  start = head.index(struct.pack("<Q", len(name)) + name.encode()) + 8 + len(name)
  n_dims = struct.unpack_from("<I", head, start)[0]
  dims = start + 4
  return dims, dims + 8 * n_dims, dims + 8 * n_dims + 4


def _fails_fast(path, match, seconds=5.0):
  t0 = time.monotonic()
  with pytest.raises(CheckpointError, match=match):
    g = read_gguf(path)
    params_from_gguf(g, config_from_gguf(g))
  assert time.monotonic() - t0 < seconds


def test_huge_block_count_at_offset_486_fails_before_building(bundled_copy):
  assert _header_bytes(bundled_copy)[486:490] == struct.pack("<I", 30)
  with patched(bundled_copy, 486, struct.pack("<I", 2**31)):
    _fails_fast(bundled_copy, r"num_layers = 2147483648 is outside the accepted range")
  with patched(bundled_copy, 486, struct.pack("<I", 1000)):  # within the limits, but the tensors are not there
    _fails_fast(bundled_copy, r"tensor\(s\) the config needs are missing, e.g. "
                              r"'model.layers.30.input_layernorm.weight'")
  with patched(bundled_copy, 486, struct.pack("<I", 29)):  # fewer layers than the file holds
    _fails_fast(bundled_copy, r"not part of the model the config describes, e.g. 'blk.29")


@pytest.mark.parametrize("value_type", [9, 7, 10, 12, 13, 255, 2**31])
def test_flipped_type_byte_at_offset_1044_never_loops(bundled_copy, value_type):
  assert _header_bytes(bundled_copy)[1044:1048] == struct.pack("<I", 8)  # tokenizer.ggml.pre's STRING type
  with patched(bundled_copy, 1044, struct.pack("<I", value_type)):
    _fails_fast(bundled_copy, r"copy.gguf", seconds=3.0)


def test_tensor_offsets_must_be_aligned_inside_and_disjoint(bundled_copy):
  _, type_pos, off_pos = _tensor_info_pos(bundled_copy, "blk.0.attn_q.weight")
  offset = struct.unpack_from("<Q", _header_bytes(bundled_copy), off_pos)[0]
  with patched(bundled_copy, off_pos, struct.pack("<Q", offset + 1)):
    _fails_fast(bundled_copy, r"'blk.0.attn_q.weight' offset .* is not a multiple of the alignment 32")
  with patched(bundled_copy, off_pos, struct.pack("<Q", 2**64 - 32)):
    _fails_fast(bundled_copy, r"'blk.0.attn_q.weight' .*extends past the end")
  with patched(bundled_copy, off_pos, struct.pack("<Q", offset - 32)):
    _fails_fast(bundled_copy, r"overlap")


def test_relabelled_dtype_and_wrong_width_are_refused(bundled_copy):
  dims_pos, type_pos, _ = _tensor_info_pos(bundled_copy, "blk.0.attn_norm.weight")
  with patched(bundled_copy, type_pos, struct.pack("<I", 26)):  # F32 -> I32
    _fails_fast(bundled_copy, r"'blk.0.attn_norm.weight' has dtype I32; accepted: F32")
  dims_pos, _, _ = _tensor_info_pos(bundled_copy, "blk.0.attn_k.weight")
  with patched(bundled_copy, dims_pos + 8, struct.pack("<Q", 191)):  # K projection 192 -> 191 rows: its bytes no
    _fails_fast(bundled_copy, r"unaccounted bytes between tensor 'blk.0.attn_k.weight'")  # longer fill its span
  g = read_gguf(bundled_copy)  # a K projection of the wrong width in a consistent file: a shape error, no reshape
  type_name, _, raw = g.tensors["blk.0.attn_k.weight"]
  g.tensors["blk.0.attn_k.weight"] = (type_name, (191, 576), raw)
  with pytest.raises(CheckpointError, match=r"'blk.0.attn_k.weight' has shape \(191, 576\), the config needs "
                                            r"\(192, 576\)"):
    params_from_gguf(g, config_from_gguf(g))


def _with(g: GGUFFile, **changes) -> GGUFFile:
  meta = {**g.metadata, **{k.replace("__", "."): v for k, v in changes.items()}}
  return GGUFFile(g.path, meta, g.tensors, g.types)


@pytest.mark.parametrize("key,value,match", [
    ("llama.attention.head_count", 0, r"head_count' = 0 is outside"),
    ("llama.block_count", "abc", r"block_count' must be an integer, got str"),
    ("llama.block_count", 30.0, r"must be an integer, got float"),
    ("llama.block_count", True, r"must be an integer, got bool"),
    ("llama.attention.head_count_kv", 4, r"multiple of num_kv_heads"),
    ("llama.rope.freq_base", float("nan"), r"freq_base' = nan must be finite and > 0"),
    ("llama.rope.freq_base", 0.0, r"must be finite and > 0"),
    ("llama.rope.freq_base", -1.0, r"must be finite and > 0"),
    ("llama.rope.freq_base", float("inf"), r"must be finite"),
    ("llama.attention.layer_norm_rms_epsilon", float("nan"), r"epsilon' = nan"),
    ("llama.attention.layer_norm_rms_epsilon", 0.0, r"epsilon' = 0.0"),
    ("llama.embedding_length", 9 * 2**36, r"dim = 618475290624 is outside"),
    ("tokenizer.ggml.eos_token_id", 10**6, r"eos token ids"),
    ("llama.vocab_size", 1000, r"the tokenizer has 49152 tokens, more than vocab_size 1000"),
])
def test_bad_metadata_values(bundled_header, key, value, match):
  with pytest.raises(CheckpointError, match=match):
    config_from_gguf(_with(bundled_header, **{key: value}))


@pytest.mark.parametrize("key,value,match", [
    ("tokenizer.ggml.merges", ["a b c"], r"merge 'a b c' is not two tokens"),
    ("tokenizer.ggml.merges", [1, 2], r"must be a non-empty array of strings"),
    ("tokenizer.ggml.token_type", [1, 2], r"must be 49152 integers"),
    ("tokenizer.ggml.tokens", "abc", r"must be a non-empty array of strings"),
])
def test_bad_tokenizer_fields(bundled_header, key, value, match):
  with pytest.raises(CheckpointError, match=match):
    tokenizer_data(_with(bundled_header, **{key: value}))


def test_merges_of_unknown_tokens_are_a_checkpoint_error(bundled_header):
  data = tokenizer_data(bundled_header)
  with pytest.raises(CheckpointError, match="malformed BPE vocabulary/merges"):
    Tokenizer.from_tokenizer_data({**data, "merges": ["zzqq_not_a_token yy_neither"]}, [2], "x.gguf")


@pytest.mark.parametrize("template", ["{{ 'a'*10**8 }}", "{{ 'a'*10**10 }}", "{% for x in %}",
                                      "{{ raise_exception('bad role') }}",
                                      "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"])
def test_hostile_chat_templates_are_bounded(bundled_header, template):
  data = tokenizer_data(bundled_header)
  tok = Tokenizer.from_tokenizer_data({**data, "chat_template": template}, [2], "x.gguf")
  t0 = time.monotonic()
  with pytest.raises(CheckpointError, match="the model's chat template"):
    tok.apply_chat_template([{"role": "user", "content": "hi"}])
  assert time.monotonic() - t0 < 4.0


def test_bundled_chat_template_still_renders(bundled_header):
  tok = Tokenizer.from_tokenizer_data(tokenizer_data(bundled_header), [2], "x.gguf")
  assert tok.apply_chat_template([{"role": "user", "content": "hi"}]).endswith(
      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


# ----- HF directories -----

@pytest.fixture(scope="module")
def tiny_params():
  return params_of(nnx.state(init_model(TINY, seed=3)))


def _hf_dir(tmp_path, params, **config_changes):
  save_hf(str(tmp_path), TINY, params)
  if config_changes:
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.update(config_changes)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
  return tmp_path


@pytest.mark.parametrize("changes,match", [
    ({"tie_word_embeddings": "false"}, r"'tie_word_embeddings' must be true or false, got str"),
    ({"hidden_size": "32"}, r"'hidden_size' must be an integer, got str"),
    ({"num_hidden_layers": 1}, r"not part of the model the config describes, e.g. 'model.layers.1"),
    ({"num_hidden_layers": 2**31}, r"num_layers = 2147483648 is outside"),
    ({"rope_theta": None}, r"'rope_theta' must be a number"),
    ({"rms_norm_eps": -1e-5}, r"'rms_norm_eps' = -1e-05 must be finite and > 0"),
    ({"rope_scaling": [1]}, r"'rope_scaling' must be an object"),
])
def test_bad_hf_config_values(tmp_path, tiny_params, changes, match):
  with pytest.raises(CheckpointError, match=match):
    load_hf(str(_hf_dir(tmp_path, tiny_params, **changes)))


def test_bad_hf_config_files(tmp_path, tiny_params):
  d = _hf_dir(tmp_path, tiny_params)
  (d / "config.json").write_bytes(b'{"vocab_size": 96, "\xff": 1}')
  with pytest.raises(CheckpointError, match=r"config.json: not UTF-8"):
    load_hf(str(d))
  (d / "config.json").write_text("[]")
  with pytest.raises(CheckpointError, match=r"config.json: must hold a JSON object, got list"):
    load_hf(str(d))


def test_stray_safetensors_ignored_and_shard_index_honoured(tmp_path, tiny_params, caplog):
  from safetensors.numpy import load_file, save_file

  d = _hf_dir(tmp_path, tiny_params)
  tensors = load_file(str(d / "model.safetensors"))
  stray = {"model.embed_tokens.weight": np.zeros_like(tensors["model.embed_tokens.weight"])}
  save_file(stray, str(d / "zz-stray.safetensors"))
  _, params = load_hf(str(d))
  np.testing.assert_array_equal(params["embed"]["table"], tiny_params["embed"]["table"])
  assert "ignoring zz-stray.safetensors" in caplog.text
  # Two shards and an index: the index decides; a third file is ignored.
  names = sorted(tensors)
  save_file({k: tensors[k] for k in names[:5]}, str(d / "model-00001-of-00002.safetensors"))
  save_file({k: tensors[k] for k in names[5:]}, str(d / "model-00002-of-00002.safetensors"))
  os.remove(d / "model.safetensors")
  index = {"weight_map": {k: f"model-0000{1 + (i >= 5)}-of-00002.safetensors" for i, k in enumerate(names)}}
  (d / "model.safetensors.index.json").write_text(json.dumps(index))
  _, params = load_hf(str(d))
  jax.tree.map(np.testing.assert_array_equal, params, tiny_params)
  index["weight_map"][names[0]] = "model-00002-of-00002.safetensors"
  (d / "model.safetensors.index.json").write_text(json.dumps(index))
  with pytest.raises(CheckpointError, match="the shard index says"):
    load_hf(str(d))
  os.remove(d / "model.safetensors.index.json")
  with pytest.raises(CheckpointError, match=r"3 .safetensors files .* and no model.safetensors.index.json"):
    load_hf(str(d))


def test_integer_weights_are_refused(tmp_path, tiny_params):
  from safetensors.numpy import load_file, save_file

  d = _hf_dir(tmp_path, tiny_params)
  tensors = load_file(str(d / "model.safetensors"))
  tensors["model.norm.weight"] = tensors["model.norm.weight"].view(np.int32)
  save_file(tensors, str(d / "model.safetensors"))
  with pytest.raises(CheckpointError, match=r"'model.norm.weight' has dtype I32; accepted: F32, F16, BF16"):
    load_hf(str(d))


def test_missing_and_damaged_tokenizer_files(tmp_path, tiny_params, capsys):
  from lcjax.cli import main

  d = _hf_dir(tmp_path, tiny_params)
  t0 = time.monotonic()
  assert main(["generate", "hi", "--raw", "--model", str(d)]) == 2  # no tokenizer: one clean line, exit 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "the model has no tokenizer" in err and time.monotonic() - t0 < 60
  (d / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}, "mer')
  with pytest.raises(CheckpointError, match=r"tokenizer.json: not valid JSON"):
    load_pretrained(str(d))
  (d / "tokenizer.json").write_text('{"version": "1.0"}')
  with pytest.raises(CheckpointError, match=r"tokenizer.json: not a valid tokenizer"):
    load_pretrained(str(d))


def test_generate_on_damaged_model_is_one_line_exit_2_fast(bundled_copy, capsys):
  from lcjax.cli import main

  with patched(bundled_copy, 486, struct.pack("<I", 2**31)):
    t0 = time.monotonic()
    assert main(["generate", "hi", "--model", bundled_copy]) == 2
    assert time.monotonic() - t0 < 5.0
  err = capsys.readouterr().err
  assert err.startswith("lcjax generate: error: ") and err.count("\n") == 1 and "num_layers" in err
