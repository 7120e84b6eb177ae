"""`load_pretrained`: a bundled name, a .gguf file or an HF directory -> config, params and tokenizer."""

from __future__ import annotations

import dataclasses
import json
import math
import os

from lcjax.config import ModelConfig
from lcjax.data.tokenizer import Tokenizer
from lcjax.errors import CheckpointError, ConfigError


@dataclasses.dataclass
class Pretrained:
  """A loaded model: its config, NNX graphdef and state (params), and tokenizer (None if the files have none)."""

  cfg: ModelConfig
  graphdef: object
  state: object
  tokenizer: Tokenizer | None
  source: str


def load_pretrained(name_or_path: str = "smollm2-135m", *, rope_overrides: dict | None = None,
                    weights: str = "fp32", **overrides) -> Pretrained:
  """Loads a model.

  Args:
    name_or_path: a bundled model name (`smollm2-135m`), a `.gguf` file, or an HF checkpoint directory.
    rope_overrides: RopeConfig fields to change, keeping the file's others (e.g. {"scaling": "yarn", "factor": 4}).
    **overrides: ModelConfig fields to change after reading the file (e.g. `rope=RopeConfig(...)`,
      `dtype="bfloat16"`, `attention_impl="reference"`). Shape fields cannot change.
    weights: how the matmul weights are held (`lcjax.quant.WEIGHTS`): "fp32" (dequantised, the default), "bf16"
      (param_dtype bfloat16), "gguf" (a GGUF file's Q8_0/Q4_0/Q4_1 tensors kept as stored), or a quantised format
      (`int8`, `q8_0`, `q4_0`, `q4_1`: GGUF tensors already in it kept as stored, the rest quantised from fp).
  Raises:
    CheckpointError: missing/corrupt files or tensors that do not fit.
  """
  from lcjax.checkpoint import gguf, safetensors_io
  from lcjax.models.build import state_from_params
  from lcjax.models.bundled import BUNDLED, bundled_path
  from lcjax.quant import WEIGHTS, gguf_params, quantize_params

  if weights not in WEIGHTS:
    raise CheckpointError(f"weights {weights!r} is not known; accepted: {', '.join(WEIGHTS)}")

  path = bundled_path(name_or_path) if name_or_path in BUNDLED else name_or_path
  if os.path.isdir(path) and _trained_dir(path):
    return _load_trained(path, overrides)
  if os.path.isdir(path):
    cfg, params = safetensors_io.load_hf(path)
    tokenizer = _hf_dir_tokenizer(path, cfg)
  elif path.endswith(".gguf") or os.path.isfile(path):
    g = gguf.read_gguf(path)
    cfg = gguf.config_from_gguf(g)
    params = gguf.params_from_gguf(g, cfg) if weights in ("fp32", "bf16") else gguf_params(g, cfg, weights)
    tokenizer = (Tokenizer.from_tokenizer_data(gguf.tokenizer_data(g), cfg.eos_token_ids, path)
                 if "tokenizer.ggml.tokens" in g.metadata else None)
  else:
    raise CheckpointError(f"no model at {path!r}: expected a bundled name ({', '.join(BUNDLED)}), a .gguf file "
                          f"or an HF checkpoint directory")
  shape_fields = ("vocab_size", "dim", "num_layers", "num_heads", "num_kv_heads", "head_dim", "mlp_dim",
                  "tie_embeddings", "attention_bias")
  bad = [k for k in overrides if k in shape_fields]
  if bad:
    raise CheckpointError(f"cannot override shape fields {bad} of a pretrained model")
  if rope_overrides:
    from lcjax.config import RopeConfig, from_dict, to_dict
    from lcjax.layers.rope import ROPE_SCALINGS

    rope = from_dict(RopeConfig, {**to_dict(cfg.rope), **rope_overrides}, "rope.")
    ROPE_SCALINGS.get(rope.scaling)  # an unknown name fails here, listing the known ones
    if not (math.isfinite(rope.factor) and rope.factor > 0):
      raise ConfigError(f"RoPE factor must be finite and > 0, got {rope.factor}")
    overrides["rope"] = rope
  if weights == "gguf" and not os.path.isfile(path):
    raise CheckpointError(f"weights='gguf' keeps a GGUF file's quantised tensors; {path!r} is not a GGUF file")
  if weights == "bf16":
    overrides.setdefault("param_dtype", "bfloat16")
  cfg = cfg.replace(**overrides)
  if weights not in ("fp32", "bf16", "gguf") and os.path.isdir(path):
    params = quantize_params(cfg, params, weights)
  graphdef, state = state_from_params(cfg, params, path)
  return Pretrained(cfg, graphdef, state, tokenizer, path)


def _trained_dir(path: str) -> bool:
  """Whether `path` holds a model exported by `lcjax.training` (model_config.json, directly or under model/)."""
  return any(os.path.exists(os.path.join(path, *sub, "model_config.json")) for sub in ((), ("model",)))


def _load_trained(path: str, overrides: dict) -> Pretrained:
  """A model exported by training (any architecture, e.g. a lightning hybrid); byte-level vocabularies (V = 260,
  the data pipeline's `bytes` tokenizer) get that tokenizer."""
  from lcjax.data.pipeline import ByteTokenizer
  from lcjax.training.loop import load_trained

  cfg, graphdef, state = load_trained(path, **overrides)
  tokenizer = ByteTokenizer() if cfg.vocab_size == ByteTokenizer.vocab_size else None
  return Pretrained(cfg, graphdef, state, tokenizer, path)


def _hf_dir_tokenizer(directory: str, cfg: ModelConfig) -> Tokenizer | None:
  """The directory's tokenizer.json (+ chat template from tokenizer_config.json), or None without tokenizer.json.

  Raises:
    CheckpointError: a tokenizer file that is huge, not UTF-8, not valid JSON or not a tokenizer.
  """
  from lcjax.checkpoint.safetensors_io import read_json_file

  tok_path = os.path.join(directory, "tokenizer.json")
  if not os.path.isfile(tok_path):
    return None
  from tokenizers import Tokenizer as Backend

  read_json_file(tok_path, "tokenizer", max_bytes=1 << 28)  # size, encoding and JSON checked before tokenizers
  try:
    backend = Backend.from_file(tok_path)
  except Exception as e:  # noqa: BLE001 - tokenizers raises plain Exception for malformed files
    raise CheckpointError(f"{tok_path}: not a valid tokenizer ({str(e)[:200]})") from None
  template = None
  tc_path = os.path.join(directory, "tokenizer_config.json")
  if os.path.isfile(tc_path):
    tc = read_json_file(tc_path, "tokenizer config")
    if not isinstance(tc, dict):
      raise CheckpointError(f"{tc_path}: must hold a JSON object, got {type(tc).__name__}")
    template = tc.get("chat_template")
    if isinstance(template, list):  # HF's named templates: [{"name": "default", "template": ...}, ...]
      named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
      template = named.get("default")
    if template is not None and not isinstance(template, str):
      raise CheckpointError(f"{tc_path}: chat_template must be a string, got {type(template).__name__}")
  vocab = backend.get_vocab_size(with_added_tokens=True)
  if vocab > cfg.vocab_size:
    raise CheckpointError(f"{tok_path}: {vocab} tokens, more than the model's vocab_size {cfg.vocab_size}")
  return Tokenizer(backend, cfg.bos_token_id, cfg.eos_token_ids, template)


def save_pretrained_hf(directory: str, pretrained: Pretrained) -> None:
  """Exports a loaded model as an HF checkpoint directory (config, safetensors, tokenizer files)."""
  from lcjax.checkpoint.safetensors_io import save_hf
  from lcjax.models.build import params_of

  save_hf(directory, pretrained.cfg, params_of(pretrained.state))
  if pretrained.tokenizer is not None:
    pretrained.tokenizer.backend.save(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
      json.dump({"chat_template": pretrained.tokenizer.chat_template}, f)
