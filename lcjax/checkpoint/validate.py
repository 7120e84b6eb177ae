"""Validation of model files before anything is built: typed metadata fields, a config within explicit bounds, and
the exact set of tensors with their shapes and dtypes.

A model file is untrusted input. Everything here runs on the header / config alone (no tensor is read and no model
skeleton is built), so a hostile value is refused in milliseconds instead of allocating without bound:
  - `field_int` / `field_float` / `field_bool`: a metadata value of the right type (no bool-as-int, no "false"
    string-as-bool), within [lo, hi], floats finite;
  - `check_model_config`: every shape field within `ModelLimits`, heads that divide, finite positive RoPE theta and
    norm eps, special token ids inside the vocabulary, and a total parameter count within the limit;
  - `check_tensors`: the file's tensors are exactly the config's (none missing, none extra), each of the expected
    shape and an accepted dtype.
"""

from __future__ import annotations

import dataclasses
import math
import os

from lcjax.config import ModelConfig
from lcjax.errors import CheckpointError, ConfigError

_REQUIRED = object()


@dataclasses.dataclass(frozen=True)
class ModelLimits:
  """Sane upper bounds on a model read from a file (raise them with `LCJAX_MODEL_LIMITS="max_layers=4096,..."`)."""

  max_layers: int = 1024
  max_heads: int = 1024
  max_dim: int = 1 << 16
  max_head_dim: int = 1024
  max_mlp_dim: int = 1 << 18
  max_vocab: int = 1 << 22
  max_context: int = 1 << 26
  max_params: int = 1 << 37

  @classmethod
  def from_env(cls) -> "ModelLimits":
    """The defaults, overridden by `LCJAX_MODEL_LIMITS` (comma-separated name=int)."""
    text = os.environ.get("LCJAX_MODEL_LIMITS", "")
    changes = {}
    for pair in filter(None, text.split(",")):
      name, _, value = pair.partition("=")
      if name not in {f.name for f in dataclasses.fields(cls)} or not value.strip().isdigit():
        raise CheckpointError(f"LCJAX_MODEL_LIMITS entry {pair!r} is not name=int with a name in "
                              f"{[f.name for f in dataclasses.fields(cls)]}")
      changes[name] = int(value)
    return cls(**changes)


def field_int(values: dict, key: str, where: str, lo: int, hi: int, default=_REQUIRED) -> int:
  """An integer field in [lo, hi] (bools, floats and strings are refused)."""
  if key not in values:
    if default is _REQUIRED:
      raise CheckpointError(f"{where}: {key!r} is missing")
    return default
  v = values[key]
  if isinstance(v, bool) or not isinstance(v, int):
    raise CheckpointError(f"{where}: {key!r} must be an integer, got {type(v).__name__} {_short(v)}")
  if not lo <= v <= hi:
    raise CheckpointError(f"{where}: {key!r} = {v} is outside the accepted range [{lo}, {hi}]")
  return v


def field_float(values: dict, key: str, where: str, default=_REQUIRED, positive: bool = True) -> float:
  """A finite number (positive unless `positive=False`)."""
  if key not in values:
    if default is _REQUIRED:
      raise CheckpointError(f"{where}: {key!r} is missing")
    return default
  v = values[key]
  if isinstance(v, bool) or not isinstance(v, (int, float)):
    raise CheckpointError(f"{where}: {key!r} must be a number, got {type(v).__name__} {_short(v)}")
  v = float(v)
  if not math.isfinite(v) or (positive and v <= 0):
    raise CheckpointError(f"{where}: {key!r} = {v} must be finite{' and > 0' if positive else ''}")
  return v


def field_bool(values: dict, key: str, where: str, default: bool) -> bool:
  """A true boolean (a string such as "false" is refused, not read as True)."""
  v = values.get(key, default)
  if not isinstance(v, bool):
    raise CheckpointError(f"{where}: {key!r} must be true or false, got {type(v).__name__} {_short(v)}")
  return v


def field_str(values: dict, key: str, where: str, default=None) -> str | None:
  """A string field (or `default` when absent)."""
  v = values.get(key, default)
  if v is not None and not isinstance(v, str):
    raise CheckpointError(f"{where}: {key!r} must be a string, got {type(v).__name__} {_short(v)}")
  return v


def model_config(where: str, **fields) -> ModelConfig:
  """ModelConfig(**fields), its own checks (heads that divide, even head_dim) reported as CheckpointError."""
  try:
    return ModelConfig(**fields)
  except ConfigError as e:
    raise CheckpointError(f"{where}: {e}") from None


def _short(v) -> str:
  text = repr(v)
  return text if len(text) <= 60 else text[:57] + "..."


def param_count(cfg: ModelConfig) -> int:
  """Number of parameters of `cfg`'s decoder (computed, nothing built)."""
  d, h = cfg.dim, cfg.head_dim
  per_layer = d * h * (2 * cfg.num_heads + 2 * cfg.num_kv_heads) + 3 * d * cfg.mlp_dim + 2 * d
  if cfg.attention_bias:
    per_layer += h * (cfg.num_heads + 2 * cfg.num_kv_heads)
  return cfg.num_layers * per_layer + cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2) + d


def check_model_config(cfg: ModelConfig, where: str, limits: ModelLimits | None = None) -> None:
  """Raises `CheckpointError` for a config outside `limits` or with values no model can have."""
  limits = limits or ModelLimits.from_env()
  bounds = {"num_layers": limits.max_layers, "num_heads": limits.max_heads, "num_kv_heads": limits.max_heads,
            "dim": limits.max_dim, "head_dim": limits.max_head_dim, "mlp_dim": limits.max_mlp_dim,
            "vocab_size": limits.max_vocab, "max_seq_len": limits.max_context}
  for name, hi in bounds.items():
    v = getattr(cfg, name)
    if not 1 <= v <= hi:
      raise CheckpointError(f"{where}: {name} = {v} is outside the accepted range [1, {hi}] (see ModelLimits)")
  for name, v in (("norm_eps", cfg.norm_eps), ("rope.theta", cfg.rope.theta), ("rope.factor", cfg.rope.factor)):
    if not (math.isfinite(v) and v > 0):
      raise CheckpointError(f"{where}: {name} = {v} must be finite and > 0")
  if cfg.norm_eps >= 1:
    raise CheckpointError(f"{where}: norm_eps = {cfg.norm_eps} must be < 1")
  for name in ("bos_token_id",):
    if not 0 <= getattr(cfg, name) < cfg.vocab_size:
      raise CheckpointError(f"{where}: {name} = {getattr(cfg, name)} is not a token id (vocab {cfg.vocab_size})")
  bad = [t for t in cfg.eos_token_ids if not 0 <= t < cfg.vocab_size]
  if bad or not cfg.eos_token_ids:
    raise CheckpointError(f"{where}: eos token ids {list(cfg.eos_token_ids)} must be non-empty ids below the "
                          f"vocab size {cfg.vocab_size}")
  if cfg.sliding_window is not None and (isinstance(cfg.sliding_window, bool) or
                                         not isinstance(cfg.sliding_window, int) or cfg.sliding_window < 1):
    raise CheckpointError(f"{where}: sliding_window = {cfg.sliding_window!r} must be a positive integer or absent")
  n = param_count(cfg)
  if n > limits.max_params:
    raise CheckpointError(f"{where}: the config describes {n:,} parameters, above the limit {limits.max_params:,}")


def expected_hf_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
  """HF tensor name -> shape of every tensor `cfg` has (HF [out, in] layout), computed from the config alone."""
  d, h, f, n, k, v = cfg.dim, cfg.head_dim, cfg.mlp_dim, cfg.num_heads, cfg.num_kv_heads, cfg.vocab_size
  layer = {"input_layernorm.weight": (d,), "self_attn.q_proj.weight": (n * h, d),
           "self_attn.k_proj.weight": (k * h, d), "self_attn.v_proj.weight": (k * h, d),
           "self_attn.o_proj.weight": (d, n * h), "post_attention_layernorm.weight": (d,),
           "mlp.gate_proj.weight": (f, d), "mlp.up_proj.weight": (f, d), "mlp.down_proj.weight": (d, f)}
  if cfg.attention_bias:
    layer.update({"self_attn.q_proj.bias": (n * h,), "self_attn.k_proj.bias": (k * h,),
                  "self_attn.v_proj.bias": (k * h,)})
  out = {"model.embed_tokens.weight": (v, d), "model.norm.weight": (d,)}
  for i in range(cfg.num_layers):
    out.update({f"model.layers.{i}.{name}": shape for name, shape in layer.items()})
  if not cfg.tie_embeddings:
    out["lm_head.weight"] = (v, d)
  return out


def check_tensors(cfg: ModelConfig, found: dict[str, tuple[tuple[int, ...], str]], accepted_dtypes, where: str,
                  names: dict[str, str] | None = None) -> None:
  """Checks that the file's tensors are exactly `cfg`'s, with the expected shapes and accepted dtypes.

  Args:
    found: HF name -> (shape as stored, dtype name).  accepted_dtypes: dtype names that hold weights.
    names: HF name -> the name in the file, for messages (GGUF names differ).
  Raises:
    CheckpointError: the first missing or unexpected tensor, or one of another shape or dtype.
  """
  names = names or {}
  want = expected_hf_shapes(cfg)
  missing = [n for n in want if n not in found]
  extra = [names.get(n, n) for n in found if n not in want]
  if missing:
    raise CheckpointError(f"{where}: {len(missing)} tensor(s) the config needs are missing, e.g. "
                          f"{names.get(missing[0], missing[0])!r} (num_layers={cfg.num_layers}, "
                          f"tie_embeddings={cfg.tie_embeddings})")
  if extra:
    raise CheckpointError(f"{where}: {len(extra)} tensor(s) are not part of the model the config describes, e.g. "
                          f"{extra[0]!r} (num_layers={cfg.num_layers}, tie_embeddings={cfg.tie_embeddings})")
  for name, shape in want.items():
    got, dtype = found[name]
    if tuple(got) != shape:
      raise CheckpointError(f"{where}: tensor {names.get(name, name)!r} has shape {tuple(got)}, the config needs "
                            f"{shape} (dim={cfg.dim}, heads={cfg.num_heads}/{cfg.num_kv_heads}, "
                            f"head_dim={cfg.head_dim}, mlp_dim={cfg.mlp_dim}, vocab={cfg.vocab_size})")
    if dtype not in accepted_dtypes:
      raise CheckpointError(f"{where}: tensor {names.get(name, name)!r} has dtype {dtype}; accepted: "
                            f"{', '.join(accepted_dtypes)}")
