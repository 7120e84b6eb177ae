"""HF transformers checkpoints: `config.json` + `model.safetensors` (HF tensor names), import and export."""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from lcjax.checkpoint.hf_layout import hf_to_params, params_to_hf
from lcjax.checkpoint.validate import (ModelLimits, check_model_config, check_tensors, field_bool, field_float,
                                       field_int, field_str, model_config)
from lcjax.config import ModelConfig, RopeConfig
from lcjax.errors import CheckpointError

log = logging.getLogger(__name__)

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


def config_from_hf(hf: dict, where: str, limits: ModelLimits | None = None) -> ModelConfig:
  """ModelConfig from an HF Llama-family `config.json` dict, typed and within `limits` (nothing is built).

  Raises:
    CheckpointError: a missing key, a value of the wrong type (e.g. "false" as a string) or out of bounds.
  """
  if not isinstance(hf, dict):
    raise CheckpointError(f"{where}: must hold a JSON object, got {type(hf).__name__}")
  big = 1 << 62
  rs = hf.get("rope_scaling") or {}
  if not isinstance(rs, dict):
    raise CheckpointError(f"{where}: 'rope_scaling' must be an object or null, got {type(rs).__name__}")
  kind = rs.get("rope_type", rs.get("type", "default"))
  if not isinstance(kind, str) or kind not in _ROPE_FROM_HF:
    raise CheckpointError(f"{where}: rope_scaling type {kind!r} is not supported; supported: "
                          f"{sorted(_ROPE_FROM_HF)}")
  rw = f"{where}: rope_scaling"
  rope = RopeConfig(theta=field_float(hf, "rope_theta", where, 10000.0), scaling=_ROPE_FROM_HF[kind],
                    factor=field_float(rs, "factor", rw, 1.0),
                    original_context=field_int(rs, "original_max_position_embeddings", rw, 0, big, 0),
                    low_freq_factor=field_float(rs, "low_freq_factor", rw, 1.0),
                    high_freq_factor=field_float(rs, "high_freq_factor", rw, 4.0),
                    beta_fast=field_float(rs, "beta_fast", rw, 32.0), beta_slow=field_float(rs, "beta_slow", rw, 1.0))
  eos = hf.get("eos_token_id", 2)
  eos = eos if isinstance(eos, list) else [eos]
  eos = [field_int({"eos_token_id": e}, "eos_token_id", where, 0, big) for e in eos]
  dim = field_int(hf, "hidden_size", where, 1, big)
  heads = field_int(hf, "num_attention_heads", where, 1, big)
  head_dim = hf.get("head_dim")
  if head_dim is None and dim % heads:
    raise CheckpointError(f"{where}: hidden_size {dim} is not a multiple of num_attention_heads {heads} and "
                          f"head_dim is absent")
  window = hf.get("sliding_window")
  dtype = field_str(hf, "torch_dtype", where, "float32")
  cfg = model_config(
      vocab_size=field_int(hf, "vocab_size", where, 1, big), dim=dim,
      num_layers=field_int(hf, "num_hidden_layers", where, 1, big), num_heads=heads,
      num_kv_heads=field_int(hf, "num_key_value_heads", where, 1, big, heads),
      head_dim=dim // heads if head_dim is None else field_int(hf, "head_dim", where, 1, big),
      mlp_dim=field_int(hf, "intermediate_size", where, 1, big),
      max_seq_len=field_int(hf, "max_position_embeddings", where, 1, big, 2048),
      norm_eps=field_float(hf, "rms_norm_eps", where, 1e-5), rope=rope,
      tie_embeddings=field_bool(hf, "tie_word_embeddings", where, False),
      attention_bias=field_bool(hf, "attention_bias", where, False),
      sliding_window=None if window is None else field_int(hf, "sliding_window", where, 1, big),
      bos_token_id=field_int(hf, "bos_token_id", where, 0, big, 1), eos_token_ids=tuple(eos),
      param_dtype=dtype if dtype in ("float32", "bfloat16") else "float32", where=where)
  check_model_config(cfg, where, limits)
  return cfg


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


def load_hf(directory: str, limits: ModelLimits | None = None) -> tuple[ModelConfig, dict]:
  """Reads an HF Llama-family checkpoint directory, validating config and tensor headers before reading weights.

  The weight files are those the shard index (`model.safetensors.index.json`) names, else `model.safetensors`
  (other `*.safetensors` files are ignored with a warning), else the single `*.safetensors` file.

  Returns:
    (ModelConfig, nested param dict of float arrays).
  Raises:
    CheckpointError: missing files, a corrupt config or safetensors file, missing, extra or mis-shaped tensors.
  """
  cfg_path = os.path.join(directory, "config.json")
  cfg = config_from_hf(read_json_file(cfg_path, "HF checkpoint config"), cfg_path, limits)
  files = weight_files(directory)
  headers = {name: _header(os.path.join(directory, name)) for name in sorted(set(files.values()))}
  found, owner = {}, {}
  for name, header in headers.items():
    for key, (shape, dtype) in header.items():
      if key in found:
        raise CheckpointError(f"{directory}: tensor {key!r} is stored twice ({owner[key]} and {name})")
      if files.get(key, name) != name:
        raise CheckpointError(f"{directory}: tensor {key!r} is in {name} but the shard index says {files[key]}")
      found[key], owner[key] = (shape, dtype), name
  missing_in_shards = [k for k, f in files.items() if k not in found and not k.startswith("__file:")]
  if missing_in_shards:
    raise CheckpointError(f"{directory}: the shard index lists {missing_in_shards[0]!r} in "
                          f"{files[missing_in_shards[0]]}, which does not hold it")
  check_tensors(cfg, found, _WEIGHT_DTYPES, directory)
  tensors = {}
  for name in headers:
    tensors.update(_read_tensors(os.path.join(directory, name), [k for k in found if owner[k] == name]))
  return cfg, hf_to_params(cfg, tensors.__getitem__, directory)


_WEIGHT_DTYPES = ("F32", "F16", "BF16")
INDEX_FILE = "model.safetensors.index.json"


def read_json_file(path: str, what: str, max_bytes: int = 1 << 26):
  """The JSON value of a small file; CheckpointError for a missing, huge, non-UTF-8 or malformed file."""
  if not os.path.isfile(path):
    raise CheckpointError(f"{what} not found: {path}")
  if os.path.getsize(path) > max_bytes:
    raise CheckpointError(f"{path}: {os.path.getsize(path)} bytes, above the {max_bytes}-byte limit for {what}")
  try:
    with open(path, "rb") as f:
      return json.loads(f.read().decode("utf-8"))
  except UnicodeDecodeError as e:
    raise CheckpointError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
  except (ValueError, RecursionError) as e:
    raise CheckpointError(f"{path}: not valid JSON ({str(e)[:200]})") from None


def weight_files(directory: str) -> dict[str, str]:
  """{tensor name: file} from the shard index, or {"__file:<name>": name} for the one weight file to read."""
  index_path = os.path.join(directory, INDEX_FILE)
  present = sorted(f for f in os.listdir(directory) if f.endswith(".safetensors"))
  if os.path.isfile(index_path):
    index = read_json_file(index_path, "shard index")
    wm = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wm, dict) or not wm or not all(isinstance(k, str) and isinstance(v, str) for k, v in wm.items()):
      raise CheckpointError(f"{index_path}: needs a non-empty 'weight_map' of tensor name -> file name")
    bad = sorted({v for v in wm.values() if os.path.basename(v) != v or v not in present})
    if bad:
      raise CheckpointError(f"{index_path}: names shard file(s) {bad[:3]} that are not in {directory}")
    stray = sorted(set(present) - set(wm.values()))
    if stray:
      log.warning("%s: ignoring %s (not in the shard index)", directory, ", ".join(stray))
    return dict(wm)
  if "model.safetensors" in present:
    if len(present) > 1:
      log.warning("%s: reading model.safetensors, ignoring %s", directory,
                  ", ".join(f for f in present if f != "model.safetensors"))
    return {"__file:model.safetensors": "model.safetensors"}
  if len(present) == 1:
    return {f"__file:{present[0]}": present[0]}
  if not present:
    raise CheckpointError(f"{directory}: no .safetensors file")
  raise CheckpointError(f"{directory}: {len(present)} .safetensors files ({', '.join(present[:4])}) and no "
                        f"{INDEX_FILE} saying which hold the model")


def _header(path: str) -> dict[str, tuple[tuple[int, ...], str]]:
  """{tensor name: (shape, dtype)} from a safetensors file's header (no tensor is read)."""
  from safetensors import SafetensorError
  from safetensors import safe_open

  try:
    with safe_open(path, framework="numpy") as f:
      out = {}
      for key in f.keys():
        sl = f.get_slice(key)
        out[key] = (tuple(int(d) for d in sl.get_shape()), str(sl.get_dtype()))
      return out
  except (SafetensorError, OSError, ValueError) as e:
    raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({str(e)[:200]})") from None


def _read_tensors(path: str, keys: list[str]) -> dict[str, np.ndarray]:
  from safetensors import SafetensorError
  from safetensors.numpy import safe_open

  try:
    with safe_open(path, framework="numpy") as f:
      return {key: f.get_tensor(key) for key in keys}
  except (SafetensorError, OSError, ValueError, TypeError) as e:
    raise CheckpointError(f"{path}: cannot read its tensors ({str(e)[:200]})") from None
