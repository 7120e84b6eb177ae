"""HF transformers checkpoints: `config.json` + `model.safetensors` (HF tensor names), import and export."""

from __future__ import annotations

import json
import os

import numpy as np

from lcjax.checkpoint.hf_layout import hf_to_params, params_to_hf
from lcjax.config import ModelConfig, RopeConfig
from lcjax.errors import CheckpointError

_ROPE_TO_HF = {"linear": "linear", "ntk": "dynamic", "yarn": "yarn", "llama3": "llama3"}
_ROPE_FROM_HF = {"linear": "linear", "yarn": "yarn", "llama3": "llama3", "dynamic": "ntk", "default": "none"}


def config_to_hf(cfg: ModelConfig) -> dict:
  """HF `LlamaConfig` fields for `cfg` (ABF is written as its new rope_theta)."""
  rope = cfg.rope
  theta = rope.new_theta if rope.scaling == "abf" else rope.theta
  out = {
      "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": cfg.vocab_size,
      "hidden_size": cfg.dim, "intermediate_size": cfg.mlp_dim, "num_hidden_layers": cfg.num_layers,
      "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim,
      "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps, "rope_theta": theta,
      "tie_word_embeddings": cfg.tie_embeddings, "attention_bias": cfg.attention_bias, "hidden_act": "silu",
      "bos_token_id": cfg.bos_token_id, "eos_token_id": list(cfg.eos_token_ids), "torch_dtype": cfg.param_dtype,
      "sliding_window": cfg.sliding_window,
  }
  if rope.scaling not in ("none", "abf"):
    out["rope_scaling"] = {
        "rope_type": _ROPE_TO_HF[rope.scaling], "factor": rope.factor,
        "original_max_position_embeddings": rope.original_context or cfg.max_seq_len,
        "low_freq_factor": rope.low_freq_factor, "high_freq_factor": rope.high_freq_factor,
        "beta_fast": rope.beta_fast, "beta_slow": rope.beta_slow}
  return out


def config_from_hf(hf: dict, where: str) -> ModelConfig:
  """ModelConfig from an HF Llama-family `config.json` dict."""
  try:
    rs = hf.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind not in _ROPE_FROM_HF:
      raise CheckpointError(f"{where}: rope_scaling type {kind!r} is not supported; supported: "
                            f"{sorted(_ROPE_FROM_HF)}")
    rope = RopeConfig(theta=float(hf.get("rope_theta", 10000.0)), scaling=_ROPE_FROM_HF[kind],
                      factor=float(rs.get("factor", 1.0)),
                      original_context=int(rs.get("original_max_position_embeddings", 0)),
                      low_freq_factor=float(rs.get("low_freq_factor", 1.0)),
                      high_freq_factor=float(rs.get("high_freq_factor", 4.0)),
                      beta_fast=float(rs.get("beta_fast", 32.0)), beta_slow=float(rs.get("beta_slow", 1.0)))
    eos = hf.get("eos_token_id", 2)
    heads = int(hf["num_attention_heads"])
    return ModelConfig(
        vocab_size=int(hf["vocab_size"]), dim=int(hf["hidden_size"]), num_layers=int(hf["num_hidden_layers"]),
        num_heads=heads, num_kv_heads=int(hf.get("num_key_value_heads", heads)),
        head_dim=int(hf.get("head_dim") or hf["hidden_size"] // heads), mlp_dim=int(hf["intermediate_size"]),
        max_seq_len=int(hf.get("max_position_embeddings", 2048)), norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
        rope=rope, tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        attention_bias=bool(hf.get("attention_bias", False)), sliding_window=hf.get("sliding_window"),
        bos_token_id=int(hf.get("bos_token_id", 1)), eos_token_ids=tuple(eos if isinstance(eos, list) else [eos]),
        param_dtype=str(hf.get("torch_dtype", "float32")) if hf.get("torch_dtype") in ("float32", "bfloat16")
        else "float32")
  except KeyError as e:
    raise CheckpointError(f"{where}: config.json lacks {e.args[0]!r}") from None


def save_hf(directory: str, cfg: ModelConfig, params: dict) -> None:
  """Writes `config.json` and `model.safetensors` (HF names and layouts) into `directory`, atomically per file."""
  from safetensors.numpy import save_file

  os.makedirs(directory, exist_ok=True)
  tensors = params_to_hf(cfg, params)
  tmp = os.path.join(directory, "model.safetensors.tmp")
  save_file(tensors, tmp, metadata={"format": "pt"})
  os.replace(tmp, os.path.join(directory, "model.safetensors"))
  with open(os.path.join(directory, "config.json.tmp"), "w") as f:
    json.dump(config_to_hf(cfg), f, indent=2)
  os.replace(os.path.join(directory, "config.json.tmp"), os.path.join(directory, "config.json"))


def load_hf(directory: str) -> tuple[ModelConfig, dict]:
  """Reads an HF Llama-family checkpoint directory.

  Returns:
    (ModelConfig, nested param dict of float arrays).
  Raises:
    CheckpointError: missing files, a corrupt safetensors file, missing or mis-shaped tensors.
  """
  from safetensors import SafetensorError
  from safetensors.numpy import safe_open

  cfg_path = os.path.join(directory, "config.json")
  if not os.path.isfile(cfg_path):
    raise CheckpointError(f"HF checkpoint config not found: {cfg_path}")
  try:
    with open(cfg_path) as f:
      cfg = config_from_hf(json.load(f), cfg_path)
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{cfg_path}: not valid JSON ({e})") from None
  files = sorted(f for f in os.listdir(directory) if f.endswith(".safetensors"))
  if not files:
    raise CheckpointError(f"{directory}: no .safetensors file")
  tensors: dict[str, np.ndarray] = {}
  for name in files:
    path = os.path.join(directory, name)
    try:
      with safe_open(path, framework="numpy") as f:
        for key in f.keys():
          tensors[key] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as e:
      raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({e})") from None
  return cfg, hf_to_params(cfg, tensors.__getitem__, directory)
