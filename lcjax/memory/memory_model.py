"""Peak device memory of prefill and decode, and the adaptive KV placement manager (SpeContext, Xu et al. 2025).

Memory model (bytes; b = bytes per element of the compute dtype, B batch, T tokens of the prefill chunk, S cache
slots, L layers, K kv heads, H head dim, N query heads, D model dim, F MLP dim, V vocab):

  weights      = sum of parameter sizes
  kv           = L_dev * B * S * kv_bytes_per_token_layer        (device-resident layers; a KV method passes its own
                                                                   bytes per token and budget: `KVFootprint`)
  prefill act. = B * T * (3F + D) * b                            (MLP peak: gate, up and their product live together,
                                                                   with the residual stream)
               + r * (L - 1) * B * T * 2 * K * H * b             (each layer's new K/V, held until the cache update:
                                                                   XLA on CPU keeps r = 2 copies, token- and
                                                                   heads-major; a fused scatter has r = 0)
  decode act.  = B * N * S_att * 4 * 2 + B * (3F + 2D + V) * 4   (fp32 scores and probabilities of one layer over
                                                                   the S_att attended keys; one token's activations
                                                                   and logits)
  offloaded    = 2 * B * S * kv_bytes_per_token_layer (dense: two streamed layers in flight), or
                 (L - L_dev) * B * budget * kv_bytes_per_token_layer (sparse: one working set per offloaded layer)

The adaptive manager (`plan_kv_placement`) keeps the first `device_layers` layers' KV on device and offloads the
rest, choosing the split (and optionally the batch) that maximises predicted decode throughput within the budget;
`placement_schedule` gives the context lengths at which a growing sequence must offload one more layer (SpeContext
re-plans as reasoning sequences grow instead of fixing the split before inference).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax.numpy as jnp

from lcjax.config import ModelConfig
from lcjax.errors import CapacityError, ConfigError


@dataclasses.dataclass(frozen=True)
class KVFootprint:
  """What a KV method stores and reads, per layer.

  Attributes:
    bytes_per_token: bytes stored per cached token in one layer (dense: 2 * K * H * dtype bytes).
    budget_tokens: tokens attended per step (None: all of them, dense).
    reuse: fraction of one step's selected KV still resident from the previous step (elastic loading moves only
      the rest; SpeContext reports up to ~90% for adjacent decode steps).
  """

  bytes_per_token: float
  budget_tokens: int | None = None
  reuse: float = 0.0

  def __post_init__(self):
    if not 0.0 <= self.reuse <= 1.0:
      raise ConfigError(f"KVFootprint.reuse must be in [0, 1], got {self.reuse}")

  def attended(self, context: int) -> int:
    return context if self.budget_tokens is None else min(context, self.budget_tokens)


def dense_footprint(cfg: ModelConfig, cache_dtype=None) -> KVFootprint:
  """The dense cache: K and V of every token, [K, H] each, in the cache dtype."""
  itemsize = jnp.dtype(cache_dtype or cfg.dtype).itemsize
  return KVFootprint(2 * cfg.num_kv_heads * cfg.head_dim * itemsize)


def param_count(cfg: ModelConfig) -> int:
  """Parameters of the Llama-family decoder described by `cfg`."""
  d, n, k, h, f = cfg.dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim
  attn = d * n * h * 2 + d * k * h * 2 + ((n + 2 * k) * h if cfg.attention_bias else 0)
  layer = attn + 3 * d * f + 2 * d
  head = 0 if cfg.tie_embeddings else d * cfg.vocab_size
  return cfg.num_layers * layer + cfg.vocab_size * d + d + head


@dataclasses.dataclass(frozen=True)
class MemoryBreakdown:
  """Predicted peak device bytes and its parts."""

  weights: float
  kv: float
  activations: float
  staging: float

  @property
  def total(self) -> float:
    return self.weights + self.kv + self.activations + self.staging


def predict_peak(cfg: ModelConfig, batch: int, context: int, phase: str = "prefill", *,
                 kv: KVFootprint | None = None, device_layers: int | None = None, chunk: int | None = None,
                 kv_copies: float = 2.0, param_dtype=None) -> MemoryBreakdown:
  """Peak device memory of one prefill call or one decode step (the formulas in the module docstring).

  Args:
    cfg: model.  batch: B.  context: cache slots S (prefill: also T unless `chunk`).  phase: prefill | decode.
    kv: the KV method's footprint (default dense).  device_layers: layers whose KV is on device (default all).
    chunk: prefill chunk length T.  kv_copies: r, copies of each layer's new K/V held during prefill.
    param_dtype: dtype of the weights (default cfg.param_dtype).
  """
  if phase not in ("prefill", "decode"):
    raise ConfigError(f"phase must be prefill or decode, got {phase!r}")
  kv = kv or dense_footprint(cfg)
  n_dev = cfg.num_layers if device_layers is None else device_layers
  if not 0 <= n_dev <= cfg.num_layers:
    raise ConfigError(f"device_layers must be in [0, {cfg.num_layers}], got {n_dev}")
  b = jnp.dtype(cfg.dtype).itemsize
  weights = param_count(cfg) * jnp.dtype(param_dtype or cfg.param_dtype).itemsize
  kv_bytes = n_dev * batch * context * kv.bytes_per_token  # every method stores every token (sparse: reads fewer)
  if phase == "prefill":
    t = min(chunk or context, context)
    per_kv = 2 * cfg.num_kv_heads * cfg.head_dim * b
    act = batch * t * (3 * cfg.mlp_dim + cfg.dim) * b + kv_copies * (cfg.num_layers - 1) * batch * t * per_kv
  else:
    act = batch * cfg.num_heads * kv.attended(context) * 4 * 2 + batch * (
        3 * cfg.mlp_dim + 2 * cfg.dim + cfg.vocab_size) * 4
  staging = offloaded_device_bytes(kv, batch, context, cfg.num_layers - n_dev)
  return MemoryBreakdown(float(weights), float(kv_bytes), float(act), float(staging))


def offloaded_device_bytes(kv: KVFootprint, batch: int, context: int, offloaded: int) -> float:
  """Device bytes of offloaded layers: a dense layer streams through two buffers (one in use, one loading); a
  sparse method keeps a working set of its budget per offloaded layer (pages are reused across steps)."""
  if offloaded == 0:
    return 0.0
  if kv.budget_tokens is None:
    return 2.0 * batch * context * kv.bytes_per_token
  return float(offloaded * batch * kv.attended(context) * kv.bytes_per_token)


def layer_step_bytes(kv: KVFootprint, batch: int, context: int) -> float:
  """Bytes one offloaded layer moves to the device per decode step (elastic loading skips reused KV)."""
  return batch * kv.attended(context) * kv.bytes_per_token * (1.0 - kv.reuse)


@dataclasses.dataclass(frozen=True)
class PlacementPlan:
  """The chosen split: batch, layers on device / offloaded, predicted step time, tokens/s and peak memory."""

  batch: int
  device_layers: int
  offloaded_layers: int
  step_s: float
  tokens_per_s: float
  peak: MemoryBreakdown


def decode_step_seconds(cfg: ModelConfig, batch: int, context: int, device_layers: int, kv: KVFootprint,
                        hbm_bw: float, link_bw: float, overlap: bool = True) -> float:
  """Predicted decode step: reading weights and on-device KV from HBM, and moving offloaded layers' KV over the
  host link; with overlap (asynchronous prefetch) the two proceed together, else one after the other."""
  weights = param_count(cfg) * jnp.dtype(cfg.param_dtype).itemsize
  hbm = (weights + cfg.num_layers * batch * kv.attended(context) * kv.bytes_per_token) / hbm_bw
  link = (cfg.num_layers - device_layers) * layer_step_bytes(kv, batch, context) / link_bw
  return max(hbm, link) if overlap else hbm + link


def plan_kv_placement(cfg: ModelConfig, budget_bytes: float, context: int, *, hbm_bw: float, link_bw: float,
                      kv: KVFootprint | None = None, batches: Sequence[int] = (1,), overlap: bool = True
                      ) -> PlacementPlan:
  """The (batch, device layers) that maximise decode tokens/s with predicted peak memory within the budget.

  Raises:
    CapacityError: not even the weights with every layer offloaded fit the budget.
  """
  kv = kv or dense_footprint(cfg)
  best = None
  for batch in batches:
    for n in range(cfg.num_layers, -1, -1):  # most layers on device first: fewer bytes over the link
      peak = predict_peak(cfg, batch, context, "decode", kv=kv, device_layers=n)
      if peak.total > budget_bytes:
        continue
      step = decode_step_seconds(cfg, batch, context, n, kv, hbm_bw, link_bw, overlap)
      plan = PlacementPlan(batch, n, cfg.num_layers - n, step, batch / step, peak)
      if best is None or plan.tokens_per_s > best.tokens_per_s:
        best = plan
      break  # fewer device layers at this batch cannot be faster
  if best is None:
    need = predict_peak(cfg, min(batches), context, "decode", kv=kv, device_layers=0).total
    raise CapacityError(f"the model needs {need / 2**30:.2f} GiB even with every layer's KV offloaded "
                        f"(batch {min(batches)}, context {context}); the budget is {budget_bytes / 2**30:.2f} GiB")
  return best


def placement_schedule(cfg: ModelConfig, budget_bytes: float, max_context: int, *, hbm_bw: float, link_bw: float,
                       kv: KVFootprint | None = None, batch: int = 1, step: int = 256) -> list[tuple[int, int]]:
  """[(context length, device layers)] where the split changes as a sequence grows to `max_context`."""
  out: list[tuple[int, int]] = []
  for ctx in range(step, max_context + 1, step):
    n = plan_kv_placement(cfg, budget_bytes, ctx, hbm_bw=hbm_bw, link_bw=link_bw, kv=kv,
                          batches=(batch,)).device_layers
    if not out or out[-1][1] != n:
      out.append((ctx, n))
  return out
