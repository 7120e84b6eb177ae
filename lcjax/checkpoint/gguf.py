"""GGUF import: metadata -> ModelConfig, tensors -> lcjax params (dequantised), tokenizer data.

llama.cpp's converter permutes the rows of Q and K so its interleaved-pair RoPE matches HF's rotate-half RoPE:
  W_gguf = W_hf.reshape(n, 2, H/2, D).swapaxes(1, 2).reshape(n*H, D)     (n = heads of that projection)
Import undoes it: W_hf = W_gguf.reshape(n, H/2, 2, D).swapaxes(1, 2).reshape(n*H, D).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lcjax.checkpoint.gguf_quants import SUPPORTED_TYPES, dequantize
from lcjax.checkpoint.gguf_reader import ReaderLimits, open_gguf
from lcjax.checkpoint.hf_layout import hf_to_params
from lcjax.checkpoint.validate import (ModelLimits, check_model_config, check_tensors, field_bool, field_float,
                                       field_int, field_str, model_config)
from lcjax.config import ModelConfig, RopeConfig
from lcjax.errors import CheckpointError

_HF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_HF_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight", "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight", "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias", "attn_v.bias": "self_attn.v_proj.bias",
    "ffn_norm.weight": "post_attention_layernorm.weight", "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight",
}
SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2")


@dataclasses.dataclass
class GGUFFile:
  """A parsed GGUF file: metadata values and raw tensors (type name, numpy shape, bytes)."""

  path: str
  metadata: dict
  tensors: dict  # gguf name -> (type name, shape, raw np.ndarray)
  types: dict = dataclasses.field(default_factory=dict)  # metadata key -> GGUF value type id

  def field(self, key: str, default=None):
    """A metadata value, or `default` when absent."""
    return self.metadata.get(key, default)


def read_gguf(path: str, limits=None) -> GGUFFile:
  """Parses a GGUF file with lcjax's bounded reader (memory-mapped; tensors are not dequantised yet).

  Every tensor's bytes are checked to be aligned, inside the data section and not overlapping another's.

  Raises:
    CheckpointError: missing, truncated or corrupt file.
  """
  raw, data = open_gguf(path, limits or ReaderLimits())
  infos = {t.name: t for t in raw.tensors}
  tensors = {name: (type_name, infos[name].shape, view) for name, (type_name, view) in data.items()}
  return GGUFFile(path, raw.metadata, tensors, raw.types)


def _rope_from_gguf(g: GGUFFile, arch: str) -> RopeConfig:
  where = g.path
  theta = field_float(g.metadata, f"{arch}.rope.freq_base", where, 10000.0)
  kind = field_str(g.metadata, f"{arch}.rope.scaling.type", where, "none")
  factor = field_float(g.metadata, f"{arch}.rope.scaling.factor", where, 1.0)
  original = field_int(g.metadata, f"{arch}.rope.scaling.original_context_length", where, 0, 1 << 30, 0)
  names = {"none": "none", "linear": "linear", "yarn": "yarn"}
  if kind not in names:
    raise CheckpointError(f"{g.path}: RoPE scaling type {kind!r} is not supported; supported: {sorted(names)}")
  return RopeConfig(theta=theta, scaling=names[kind], factor=factor, original_context=original)


def config_from_gguf(g: GGUFFile, limits: ModelLimits | None = None) -> ModelConfig:
  """Reads the model hyper-parameters from GGUF metadata, typed and within `limits` (nothing is built).

  Raises:
    CheckpointError: an unsupported architecture, a missing key, or a value of the wrong type or out of bounds.
  """
  arch = g.field("general.architecture")
  if arch not in SUPPORTED_ARCHITECTURES:
    raise CheckpointError(f"{g.path}: architecture {arch!r} is not supported; supported: {SUPPORTED_ARCHITECTURES}")
  m, where, big = g.metadata, g.path, 1 << 62
  dim = field_int(m, f"{arch}.embedding_length", where, 1, big)
  heads = field_int(m, f"{arch}.attention.head_count", where, 1, big)
  kv_heads = field_int(m, f"{arch}.attention.head_count_kv", where, 1, big, heads)
  tokens = m.get("tokenizer.ggml.tokens", [])
  if not isinstance(tokens, list):
    raise CheckpointError(f"{where}: 'tokenizer.ggml.tokens' must be an array of strings")
  vocab = field_int(m, f"{arch}.vocab_size", where, 1, big, len(tokens))
  if len(tokens) > vocab:
    raise CheckpointError(f"{where}: the tokenizer has {len(tokens)} tokens, more than vocab_size {vocab} (ids past "
                          f"the embedding would be read as garbage)")
  if "tokenizer.ggml.eos_token_id" not in m:
    raise CheckpointError(f"{where}: metadata key 'tokenizer.ggml.eos_token_id' is missing")
  eos = [field_int(m, "tokenizer.ggml.eos_token_id", where, 0, big)]
  index = {t: i for i, t in reversed(list(enumerate(tokens)))} if tokens else {}
  for stop in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>"):
    if stop in index and index[stop] not in eos:
      eos.append(index[stop])
  if f"{arch}.attention.key_length" not in m and dim % heads:
    raise CheckpointError(f"{where}: embedding_length {dim} is not a multiple of head_count {heads} and "
                          f"attention.key_length is absent")
  window = m.get(f"{arch}.attention.sliding_window")
  cfg = model_config(
      vocab_size=vocab, dim=dim, num_layers=field_int(m, f"{arch}.block_count", where, 1, big),
      num_heads=heads, num_kv_heads=kv_heads,
      head_dim=field_int(m, f"{arch}.attention.key_length", where, 1, big, dim // heads),
      mlp_dim=field_int(m, f"{arch}.feed_forward_length", where, 1, big),
      max_seq_len=field_int(m, f"{arch}.context_length", where, 1, big),
      norm_eps=field_float(m, f"{arch}.attention.layer_norm_rms_epsilon", where, 1e-5),
      rope=_rope_from_gguf(g, arch), tie_embeddings="output.weight" not in g.tensors,
      attention_bias="blk.0.attn_q.bias" in g.tensors,
      sliding_window=None if window is None else field_int(m, f"{arch}.attention.sliding_window", where, 1, big),
      bos_token_id=field_int(m, "tokenizer.ggml.bos_token_id", where, 0, big, 1), eos_token_ids=tuple(eos),
      where=where)
  check_model_config(cfg, where, limits)
  return cfg


def unpermute_rows(w: np.ndarray, heads: int) -> np.ndarray:
  """Undoes llama.cpp's Q/K row permutation: [n*H, D] interleaved pairs -> rotate-half halves."""
  rows = w.shape[0]
  return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _hf_name(name: str) -> str | None:
  if name in _HF_NAMES:
    return _HF_NAMES[name]
  parts = name.split(".", 2)
  if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit():
    _, idx, rest = parts
    if rest in _HF_LAYER_NAMES:
      return f"model.layers.{idx}.{_HF_LAYER_NAMES[rest]}"
  return None


def check_gguf_tensors(g: GGUFFile, cfg: ModelConfig) -> dict[str, str]:
  """Checks the file's tensors are exactly `cfg`'s (names, shapes, supported types) before any is read.

  Returns:
    {HF name: GGUF name}.
  """
  by_hf = {_hf_name(n): n for n in g.tensors if _hf_name(n)}
  unknown = [n for n in g.tensors if not _hf_name(n)]
  if "rope_freqs.weight" in unknown:
    raise CheckpointError(f"{g.path}: tensor 'rope_freqs.weight' (Llama-3 RoPE frequency factors) is not supported "
                          f"by the GGUF importer; ignoring it would run the model with the wrong RoPE. Convert the "
                          f"HF checkpoint (rope_scaling llama3) instead")
  if unknown:
    raise CheckpointError(f"{g.path}: tensor {unknown[0]!r} is not part of a {SUPPORTED_ARCHITECTURES} model")
  found = {hf: (g.tensors[n][1], g.tensors[n][0]) for hf, n in by_hf.items()}
  check_tensors(cfg, found, SUPPORTED_TYPES, g.path, by_hf)
  return by_hf


def params_from_gguf(g: GGUFFile, cfg: ModelConfig) -> dict:
  """Dequantises every tensor to float32 and maps it onto lcjax's param tree.

  Raises:
    CheckpointError: unsupported tensor type, missing tensor, or a shape that does not fit `cfg`.
  """
  by_hf = check_gguf_tensors(g, cfg)

  def get_tensor(hf: str) -> np.ndarray:
    name = by_hf[hf]
    type_name, shape, raw = g.tensors[name]
    w = dequantize(raw, type_name, shape, where=f"{g.path}: tensor {name!r}")
    if name.endswith(("attn_q.weight", "attn_q.bias")):
      w = unpermute_rows(w, cfg.num_heads)
    elif name.endswith(("attn_k.weight", "attn_k.bias")):
      w = unpermute_rows(w, cfg.num_kv_heads)
    return w

  return hf_to_params(cfg, get_tensor, g.path)


def tokenizer_data(g: GGUFFile) -> dict:
  """The tokenizer fields of a GGUF file: model kind, tokens, token types, merges, special ids, chat template.

  Raises:
    CheckpointError: no tokenizer, or fields of the wrong type or length (names the field).
  """
  m, where = g.metadata, g.path
  if "tokenizer.ggml.tokens" not in m:
    raise CheckpointError(f"{where}: no tokenizer in this GGUF file")
  tokens = _str_list(m, "tokenizer.ggml.tokens", where)
  types = m.get("tokenizer.ggml.token_type", [])
  if not isinstance(types, list) or not all(type(t) is int for t in types) or len(types) not in (0, len(tokens)):
    raise CheckpointError(f"{where}: 'tokenizer.ggml.token_type' must be {len(tokens)} integers (one per token)")
  merges = _str_list(m, "tokenizer.ggml.merges", where) if "tokenizer.ggml.merges" in m else []
  bad = next((x for x in merges if len(x.split(" ")) != 2), None)
  if bad is not None:
    raise CheckpointError(f"{where}: BPE merge {bad[:60]!r} is not two tokens separated by one space")
  n = len(tokens)
  return {
      "model": field_str(m, "tokenizer.ggml.model", where), "pre": field_str(m, "tokenizer.ggml.pre", where),
      "tokens": tokens, "token_types": list(types), "merges": merges,
      "bos_token_id": field_int(m, "tokenizer.ggml.bos_token_id", where, 0, n - 1, None),
      "eos_token_id": field_int(m, "tokenizer.ggml.eos_token_id", where, 0, n - 1, None),
      "add_bos_token": field_bool(m, "tokenizer.ggml.add_bos_token", where, False),
      "chat_template": field_str(m, "tokenizer.chat_template", where),
  }


def _str_list(m: dict, key: str, where: str) -> list[str]:
  values = m.get(key)
  if not isinstance(values, list) or not values or not all(isinstance(x, str) for x in values):
    raise CheckpointError(f"{where}: {key!r} must be a non-empty array of strings")
  return values
