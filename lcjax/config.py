"""Typed, frozen configs. Built from dicts / `ml_collections.ConfigDict` at the launch boundary, validated once.

`from_dict(ModelConfig, d)` rejects unknown keys (naming them and the accepted ones) and builds nested configs.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from lcjax.errors import ConfigError

C = TypeVar("C")


@dataclasses.dataclass(frozen=True)
class RopeConfig:
  """Rotary position embedding and its context-extension scaling (see `lcjax.layers.rope`).

  Attributes:
    theta: base frequency of the trained model.
    scaling: name in `ROPE_SCALINGS`: none, linear, ntk, yarn, llama3, abf.
    factor: context extension factor s (linear / ntk / yarn / llama3).
    original_context: context length the model was trained at (yarn / llama3); 0 = the model's max_seq_len.
    beta_fast, beta_slow: YaRN ramp bounds (rotations within the original context).
    low_freq_factor, high_freq_factor: Llama-3 smoothing band.
    new_theta: ABF's adjusted base frequency.
  """

  theta: float = 10000.0
  scaling: str = "none"
  factor: float = 1.0
  original_context: int = 0
  beta_fast: float = 32.0
  beta_slow: float = 1.0
  low_freq_factor: float = 1.0
  high_freq_factor: float = 4.0
  new_theta: float = 0.0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """A Llama-family decoder.

  Attributes (letters as in DESIGN.md): vocab_size V, dim D, num_layers L, num_heads N, num_kv_heads K,
  head_dim H, mlp_dim F. max_seq_len is the trained context; prompts past it need a RoPE scaling.
  """

  vocab_size: int
  dim: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  mlp_dim: int
  max_seq_len: int = 2048
  norm_eps: float = 1e-5
  rope: RopeConfig = RopeConfig()
  tie_embeddings: bool = True
  attention_bias: bool = False
  sliding_window: int | None = None
  attention_sinks: int = 0
  dtype: str = "float32"        # compute dtype
  param_dtype: str = "float32"
  attention_impl: str = "auto"  # name in lcjax.ops.ATTENTION_IMPLS
  decode_impl: str = "auto"     # name in lcjax.ops.DECODE_IMPLS
  bos_token_id: int = 1
  eos_token_ids: tuple[int, ...] = (2,)
  # LongGen: (C, local blocks, stride) block-sparse pattern on every layer not in full_attention_layers (None: off)
  sparse_pattern: tuple[int, int, int] | None = None
  full_attention_layers: tuple[int, ...] = ()
  # Linear-attention hybrids (MiniMax-01; lcjax.models.hybrid): architecture names an entry of lcjax.models.MODELS;
  # layer_types gives each layer's block type ("attention", "lightning"; empty: all attention).
  architecture: str = "llama"
  layer_types: tuple[str, ...] = ()
  decay_schedule: str = "minimax"        # name in lcjax.ops.linear_decay.DECAY_SCHEDULES
  linear_attention_impl: str = "auto"    # name in lcjax.ops.LINEAR_ATTENTION_IMPLS
  linear_block_size: int = 64
  postnorm: bool = False                 # MiniMax: the residual is the normalised input (DeepNorm-style)
  residual_alpha: float = 1.0            # MiniMax: (2 L)^(1/4) on the residual branch

  def __post_init__(self):
    for name in ("vocab_size", "dim", "num_layers", "num_heads", "num_kv_heads", "head_dim", "mlp_dim",
                 "max_seq_len"):
      if getattr(self, name) < 1:
        raise ConfigError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.num_heads % self.num_kv_heads:
      raise ConfigError(f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}")
    if self.head_dim % 2:
      raise ConfigError(f"head_dim={self.head_dim} must be even for RoPE")
    if self.layer_types and len(self.layer_types) != self.num_layers:
      raise ConfigError(f"layer_types has {len(self.layer_types)} entries, num_layers={self.num_layers}; give one "
                        "block type per layer (or none: all attention)")

  def replace(self, **changes) -> "ModelConfig":
    """A copy with some fields changed (validated again)."""
    return dataclasses.replace(self, **changes)


MESH_AXES = ("data", "fsdp", "context", "tensor")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """A device mesh over the axes `data, fsdp, context, tensor` (see `lcjax.sharding.mesh`).

  Attributes:
    data, fsdp, context, tensor: axis sizes within one slice (ICI); at most one may be -1, filled so the product
      equals the devices per slice.
    dcn_data, dcn_fsdp, dcn_context, dcn_tensor: axis sizes across slices (DCN; on GPU clusters and multi-process
      CPU runs a "slice" is a process). The full axis size is ici * dcn. At most one may be -1 (the slice count).
    rules: name of the logical-axis rule set in `lcjax.sharding.rules.RULE_SETS` (fsdp, fsdp_tp, fsdp_cp, decode).
  """

  data: int = 1
  fsdp: int = -1
  context: int = 1
  tensor: int = 1
  dcn_data: int = 1
  dcn_fsdp: int = 1
  dcn_context: int = 1
  dcn_tensor: int = 1
  rules: str = "fsdp"

  def __post_init__(self):
    for prefix in ("", "dcn_"):
      sizes = {prefix + a: getattr(self, prefix + a) for a in MESH_AXES}
      bad = {k: v for k, v in sizes.items() if v == 0 or v < -1}
      if bad:
        raise ConfigError(f"MeshConfig sizes must be >= 1 or -1 (auto), got {bad}")
      if sum(v == -1 for v in sizes.values()) > 1:
        raise ConfigError(f"MeshConfig: at most one {'DCN ' if prefix else ''}axis may be -1, got {sizes}")

  @property
  def ici_shape(self) -> tuple[int, ...]:
    """Per-slice sizes in MESH_AXES order (-1 = auto)."""
    return tuple(getattr(self, a) for a in MESH_AXES)

  @property
  def dcn_shape(self) -> tuple[int, ...]:
    """Across-slice sizes in MESH_AXES order (-1 = auto)."""
    return tuple(getattr(self, "dcn_" + a) for a in MESH_AXES)


def _convert(tp, value, where: str):
  origin = typing.get_origin(tp)
  if dataclasses.is_dataclass(tp) and not isinstance(value, tp):
    return from_dict(tp, value, where)
  if origin is tuple and isinstance(value, (list, tuple)):
    return tuple(value)
  return value


def from_dict(cls: type[C], data: Any, where: str = "") -> C:
  """Builds the frozen dataclass `cls` from a mapping, rejecting unknown keys.

  Args:
    cls: a config dataclass.  data: dict, ConfigDict or an instance of cls.  where: key path for messages.
  Raises:
    ConfigError: naming unknown or missing keys and the accepted ones.
  """
  if isinstance(data, cls):
    return data
  if hasattr(data, "to_dict"):
    data = data.to_dict()
  if not isinstance(data, dict):
    raise ConfigError(f"{where or cls.__name__}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
  hints = typing.get_type_hints(cls)
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(data) - set(fields))
  if unknown:
    raise ConfigError(f"unknown key(s) {', '.join(where + k for k in unknown)} for {cls.__name__}; "
                      f"accepted: {', '.join(sorted(fields))}")
  kwargs = {k: _convert(hints[k], v, f"{where}{k}.") for k, v in data.items()}
  try:
    return cls(**kwargs)
  except TypeError as e:
    raise ConfigError(f"{where or cls.__name__}: {e}") from None


def to_dict(config) -> dict:
  """The inverse of `from_dict` (plain dicts, tuples kept)."""
  return dataclasses.asdict(config)
