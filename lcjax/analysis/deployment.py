"""Theoretical peak performance of serving long-context transformers (Yao Fu, "Challenges in Deploying
Long-Context Transformers: A Theoretical Peak Performance Analysis", 2024).

The framework serves many users' requests concurrently from one accelerator's HBM and traces every extra cost of
long context to the size of the KV cache, through four metrics bounded by four hardware limits:

  KV cache       kv(s)       = 2 * L * K * H * s * b_kv                     (K, V per layer, kv head, position)
  concurrency    users(s)    = floor((devices * HBM - weights) / kv(s))     bounded by HBM size
  prefilling     prefill(s)  = (2 * P * s + L * D * s^2) / FLOPs            bounded by GPU FLOP/s (linear layers
                                                                            2 P FLOPs per token; causal attention
                                                                            2 L D s^2 for QK^T and PV, halved)
  decoding       per token   = (weights + n * kv(s)) / HBM_bw               bounded by HBM bandwidth (every step
                                                                            reads the weights and n users' caches)
  context switch swap(s)     = kv(s) / link_bw each way                     bounded by PCIe: offloading one user's
                                                                            cache to host DDR and loading another's

`analyze` evaluates them for a model, a hardware spec and a context length.
"""

from __future__ import annotations

import dataclasses
import math

from lcjax.analysis.hardware import Hardware
from lcjax.config import ModelConfig
from lcjax.errors import ConfigError
from lcjax.registry import Registry


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """What the analysis needs of a model: parameters P, layers L, kv heads K, head dim H, model dim D, and bytes
  per weight and per cached K/V element."""

  name: str
  params: float
  layers: int
  kv_heads: int
  head_dim: int
  dim: int
  weight_bytes_per_param: float = 2.0
  kv_bytes: float = 2.0

  @property
  def weight_bytes(self) -> float:
    return self.params * self.weight_bytes_per_param

  @property
  def kv_bytes_per_token(self) -> float:
    return 2 * self.layers * self.kv_heads * self.head_dim * self.kv_bytes

  @classmethod
  def from_config(cls, name: str, cfg: ModelConfig, bytes_per_param: float = 2.0,
                  kv_bytes: float = 2.0) -> "ModelSpec":
    """The spec of an lcjax model config (bf16 weights and cache by default, as served)."""
    from lcjax.memory.memory_model import param_count

    return cls(name, float(param_count(cfg)), cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, cfg.dim,
               bytes_per_param, kv_bytes)


MODELS: Registry[ModelSpec] = Registry("analysis model")
# The paper's running example: a 34B GPT-3.5-level model (Yi-34B-200K: 60 layers, GQA with 8 kv heads of 128,
# model dim 7168) served in bf16; the paper rounds its size to 34B parameters (68 GB of weights).
MODELS.register("yi-34b", ModelSpec("Yi-34B (paper example)", 34e9, 60, 8, 128, 7168),
                doc="the paper's 34B running example: 60 layers, 8 kv heads x 128, D 7168, bf16")
MODELS.register("llama3-8b", ModelSpec("Llama-3-8B", 8.03e9, 32, 8, 128, 4096),
                doc="32 layers, 8 kv heads x 128, D 4096, bf16")
MODELS.register("llama3-70b", ModelSpec("Llama-3-70B", 70.6e9, 80, 8, 128, 8192),
                doc="80 layers, 8 kv heads x 128, D 8192, bf16")


@dataclasses.dataclass(frozen=True)
class DeploymentReport:
  """The framework's metrics for one (model, hardware, context) point. Seconds, bytes, users."""

  model: str
  hardware: str
  context: int
  kv_cache_bytes: float
  weight_bytes: float
  concurrency: int
  prefill_flops: float
  prefill_s: float
  decode_s_per_token: float
  decode_s: float
  output_tokens: int
  swap_s: float
  context_switch_s: float

  def rows(self) -> list[tuple[str, str]]:
    """(metric, value) pairs for printing."""
    return [("KV cache per user", f"{self.kv_cache_bytes / 1e9:.2f} GB"),
            ("weights", f"{self.weight_bytes / 1e9:.1f} GB"),
            ("max concurrent users (HBM-bound)", str(self.concurrency)),
            ("prefill (FLOP-bound)", f"{self.prefill_s:.2f} s ({self.prefill_flops:.3g} FLOPs)"),
            ("decode latency per token (HBM-bandwidth-bound)", f"{self.decode_s_per_token * 1e3:.1f} ms"),
            (f"decode {self.output_tokens} tokens", f"{self.decode_s:.2f} s"),
            ("swap one user's KV over the host link (PCIe-bound)", f"{self.swap_s:.3f} s"),
            ("context switch (swap out + swap in)", f"{self.context_switch_s:.3f} s")]


def analyze(model: ModelSpec, hw: Hardware, context: int, output_tokens: int = 250,
            decode_batch: int = 1) -> DeploymentReport:
  """Evaluates the framework (module docstring) for `context` tokens.

  Args:
    model: the model spec.  hw: the hardware (with `devices` for tensor parallelism).  context: s, prompt tokens.
    output_tokens: decode length for the decode total.  decode_batch: users decoded together (each reads its own
      cache every step).
  """
  if context < 1 or output_tokens < 0 or decode_batch < 1:
    raise ConfigError(f"context must be >= 1, output_tokens >= 0 and decode_batch >= 1; got {context}, "
                      f"{output_tokens}, {decode_batch}")
  kv = model.kv_bytes_per_token * context
  free = hw.devices * hw.hbm_bytes - model.weight_bytes
  if free <= 0:
    raise ConfigError(f"{model.name} weights ({model.weight_bytes / 1e9:.1f} GB) do not fit {hw.devices} x "
                      f"{hw.hbm_bytes / 1e9:.0f} GB of HBM on {hw.name}")
  flops = 2 * model.params * context + model.layers * model.dim * context**2
  compute = hw.devices * hw.flops
  per_token = (model.weight_bytes + decode_batch * kv) / (hw.devices * hw.hbm_bw)
  swap = kv / hw.host_bw
  return DeploymentReport(model.name, hw.name, context, kv, model.weight_bytes, int(math.floor(free / kv)),
                          flops, flops / compute, per_token, per_token * output_tokens, output_tokens, swap,
                          2 * swap)
