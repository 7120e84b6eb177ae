"""GGUF import: metadata -> ModelConfig, tensors -> lcjax params (dequantised), tokenizer data.

llama.cpp's converter permutes the rows of Q and K so its interleaved-pair RoPE matches HF's rotate-half RoPE:
  W_gguf = W_hf.reshape(n, 2, H/2, D).swapaxes(1, 2).reshape(n*H, D)     (n = heads of that projection)
Import undoes it: W_hf = W_gguf.reshape(n, H/2, 2, D).swapaxes(1, 2).reshape(n*H, D).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from lcjax.checkpoint.gguf_quants import dequantize
from lcjax.checkpoint.hf_layout import hf_to_params
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

  def field(self, key: str, default=None):
    """A metadata value, or `default` when absent."""
    return self.metadata.get(key, default)


def read_gguf(path: str) -> GGUFFile:
  """Parses a GGUF file (memory-mapped; tensors are not dequantised yet).

  Raises:
    CheckpointError: missing, truncated or corrupt file.
  """
  if not os.path.isfile(path):
    raise CheckpointError(f"GGUF file not found: {path}")
  import gguf  # imported lazily: a heavy module only GGUF import needs

  try:
    reader = gguf.GGUFReader(path)
    metadata = {}
    for key, fld in reader.fields.items():
      try:
        metadata[key] = fld.contents()
      except Exception:  # noqa: BLE001 - fields gguf cannot decode are not needed
        continue
    tensors = {t.name: (t.tensor_type.name, tuple(int(x) for x in reversed(t.shape)), t.data)
               for t in reader.tensors}
    ends = {t.name: int(t.data_offset) + int(t.n_bytes) for t in reader.tensors}
  except CheckpointError:
    raise
  except Exception as e:  # noqa: BLE001 - gguf raises ValueError/IndexError/struct errors on bad files
    raise CheckpointError(f"{path}: not a readable GGUF file (truncated or corrupt): {type(e).__name__}: {e}") \
        from None
  size = os.path.getsize(path)
  for name, end in ends.items():
    if end > size:
      raise CheckpointError(f"{path}: tensor {name!r} extends past the end of the file (truncated)")
  return GGUFFile(path, metadata, tensors)


def _rope_from_gguf(g: GGUFFile, arch: str) -> RopeConfig:
  theta = float(g.field(f"{arch}.rope.freq_base", 10000.0))
  kind = g.field(f"{arch}.rope.scaling.type", "none")
  factor = float(g.field(f"{arch}.rope.scaling.factor", 1.0) or 1.0)
  original = int(g.field(f"{arch}.rope.scaling.original_context_length", 0) or 0)
  names = {"none": "none", "linear": "linear", "yarn": "yarn"}
  if kind not in names:
    raise CheckpointError(f"{g.path}: RoPE scaling type {kind!r} is not supported; supported: {sorted(names)}")
  return RopeConfig(theta=theta, scaling=names[kind], factor=factor, original_context=original)


def config_from_gguf(g: GGUFFile) -> ModelConfig:
  """Reads the model hyper-parameters from GGUF metadata.

  Raises:
    CheckpointError: an unsupported architecture or a missing key.
  """
  arch = g.field("general.architecture")
  if arch not in SUPPORTED_ARCHITECTURES:
    raise CheckpointError(f"{g.path}: architecture {arch!r} is not supported; supported: {SUPPORTED_ARCHITECTURES}")
  try:
    dim = int(g.metadata[f"{arch}.embedding_length"])
    heads = int(g.metadata[f"{arch}.attention.head_count"])
    kv_heads = int(g.field(f"{arch}.attention.head_count_kv", heads))
    vocab = int(g.field(f"{arch}.vocab_size", len(g.field("tokenizer.ggml.tokens", []))))
    eos = [int(g.metadata["tokenizer.ggml.eos_token_id"])]
    tokens = g.field("tokenizer.ggml.tokens", [])
    for stop in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>"):
      if stop in tokens and tokens.index(stop) not in eos:
        eos.append(tokens.index(stop))
    return ModelConfig(
        vocab_size=vocab, dim=dim, num_layers=int(g.metadata[f"{arch}.block_count"]), num_heads=heads,
        num_kv_heads=kv_heads, head_dim=int(g.field(f"{arch}.attention.key_length", dim // heads)),
        mlp_dim=int(g.metadata[f"{arch}.feed_forward_length"]),
        max_seq_len=int(g.metadata[f"{arch}.context_length"]),
        norm_eps=float(g.field(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        rope=_rope_from_gguf(g, arch), tie_embeddings="output.weight" not in g.tensors,
        attention_bias="blk.0.attn_q.bias" in g.tensors,
        sliding_window=g.field(f"{arch}.attention.sliding_window"),
        bos_token_id=int(g.field("tokenizer.ggml.bos_token_id", 1)), eos_token_ids=tuple(eos))
  except KeyError as e:
    raise CheckpointError(f"{g.path}: metadata key {e.args[0]!r} is missing") from None


def unpermute_rows(w: np.ndarray, heads: int) -> np.ndarray:
  """Undoes llama.cpp's Q/K row permutation: [n*H, D] interleaved pairs -> rotate-half halves."""
  rows = w.shape[0]
  return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _hf_name(name: str) -> str | None:
  if name in _HF_NAMES:
    return _HF_NAMES[name]
  if name.startswith("blk."):
    _, idx, rest = name.split(".", 2)
    if rest in _HF_LAYER_NAMES:
      return f"model.layers.{idx}.{_HF_LAYER_NAMES[rest]}"
  return None


def params_from_gguf(g: GGUFFile, cfg: ModelConfig) -> dict:
  """Dequantises every tensor to float32 and maps it onto lcjax's param tree.

  Raises:
    CheckpointError: unsupported tensor type, missing tensor, or a shape that does not fit `cfg`.
  """
  by_hf = {_hf_name(n): n for n in g.tensors if _hf_name(n)}

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
  """The tokenizer fields of a GGUF file: model kind, tokens, token types, merges, special ids, chat template."""
  if "tokenizer.ggml.tokens" not in g.metadata:
    raise CheckpointError(f"{g.path}: no tokenizer in this GGUF file")
  return {
      "model": g.field("tokenizer.ggml.model"), "pre": g.field("tokenizer.ggml.pre"),
      "tokens": list(g.metadata["tokenizer.ggml.tokens"]),
      "token_types": list(g.field("tokenizer.ggml.token_type", [])),
      "merges": list(g.field("tokenizer.ggml.merges", [])),
      "bos_token_id": g.field("tokenizer.ggml.bos_token_id"), "eos_token_id": g.field("tokenizer.ggml.eos_token_id"),
      "add_bos_token": bool(g.field("tokenizer.ggml.add_bos_token", False)),
      "chat_template": g.field("tokenizer.chat_template"),
  }
