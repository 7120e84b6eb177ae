"""Linear-attention hybrids: MiniMax-01/M1 (lightning layers with a softmax layer every k-th) and the `hybrid`
option that turns any Llama-family config into "k-1 of every k layers linear".

A model is embeddings + blocks whose mixer comes from `cfg.layer_types` (registry `BLOCK_TYPES`): `attention`
(GQA + RoPE, `lcjax.layers.attention`) or `lightning` (`lcjax.layers.lightning`); norms, SwiGLU MLP, residuals and
sharding names are shared, so a hybrid and a softmax model of one config differ only in the mixers. Residuals:
  pre-norm (Llama):         h = x + Mix(LN(x));             y = h + MLP(LN(h))
  postnorm (MiniMax, L989): h = a LN(x) + Mix(LN(x));       y = a LN2(h) + MLP(LN2(h)),   a = (2 L)^(1/4)
MiniMax's MoE FFN is not built here (the `mlp` is dense SwiGLU); see NOTES-issue-12.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from lcjax.config import ModelConfig
from lcjax.layers.attention import Attention
from lcjax.layers.lightning import LightningAttention
from lcjax.layers.mlp import SwiGLU
from lcjax.layers.norm import RMSNorm
from lcjax.models.llama import _ACT, Llama
from lcjax.registry import Registry
from lcjax.sharding.partition import constrain

BLOCK_TYPES: Registry[type] = Registry("block type")
BLOCK_TYPES.register("attention", lambda cfg, layer, key: Attention(cfg, key=key), doc="softmax GQA with RoPE")
BLOCK_TYPES.register("lightning", lambda cfg, layer, key: LightningAttention(cfg, layer, key=key),
                     doc="MiniMax lightning attention (decayed linear attention, recurrent-state cache)")


def layer_types(num_layers: int, every: int = 8) -> tuple[str, ...]:
  """MiniMax's layout: layer i is softmax iff (i + 1) % every == 0 (every=8: 7:1, softmax at 7, 15, ...)."""
  return tuple("attention" if (i + 1) % every == 0 else "lightning" for i in range(num_layers))


def hybrid(cfg: ModelConfig, every: int = 4) -> ModelConfig:
  """`cfg` with every-1 of every `every` layers lightning (`every=1`: unchanged; 0: all lightning)."""
  types = ("lightning",) * cfg.num_layers if every == 0 else layer_types(cfg.num_layers, every)
  return cfg.replace(architecture="hybrid", layer_types=types)


def minimax_config(cfg: ModelConfig, every: int = 8) -> ModelConfig:
  """`cfg` as a MiniMax model: 7:1 layout, MiniMax decay, postnorm residuals with alpha = (2 L)^(1/4)."""
  return hybrid(cfg, every).replace(architecture="minimax", decay_schedule="minimax", postnorm=True,
                                    residual_alpha=(2.0 * cfg.num_layers) ** 0.25)


class HybridBlock(nnx.Module):
  """One layer: a mixer of type `kind`, a SwiGLU MLP, pre-norm or MiniMax postnorm residuals."""

  def __init__(self, cfg: ModelConfig, layer: int, kind: str, *, key: jax.Array):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    pd = jnp.dtype(cfg.param_dtype)
    self.kind = kind
    self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps, key=k1, param_dtype=pd)
    self.attn = BLOCK_TYPES.get(kind)(cfg, layer, k2)
    self.mlp_norm = RMSNorm(cfg.dim, cfg.norm_eps, key=k3, param_dtype=pd)
    self.mlp = SwiGLU(cfg.dim, cfg.mlp_dim, key=k4, param_dtype=pd)
    self.postnorm, self.alpha = cfg.postnorm, cfg.residual_alpha

  def _residual(self, x, normed):
    """The residual branch: alpha * (LN(x) with postnorm, else x)."""
    return (normed if self.postnorm else x) * self.alpha

  def __call__(self, x, cos, sin, mask, layer_cache=None):
    """[B, T, D] -> ([B, T, D], layer cache)."""
    x = checkpoint_name(x, "decoder_layer_input")
    normed = self.attn_norm(x)
    mixed, layer_cache = self.attn(normed, cos, sin, mask, layer_cache)
    h = constrain(self._residual(x, normed) + checkpoint_name(mixed, "attn_out"), _ACT)
    normed = self.mlp_norm(h)
    return constrain(self._residual(h, normed) + checkpoint_name(self.mlp(normed), "mlp_out"), _ACT), layer_cache


class Hybrid(Llama):
  """A decoder with per-layer block types (`cfg.layer_types`); everything else as `Llama`."""

  def make_block(self, cfg: ModelConfig, layer: int, key: jax.Array) -> nnx.Module:
    return HybridBlock(cfg, layer, cfg.layer_types[layer] if cfg.layer_types else "attention", key=key)

  def hidden(self, tokens, positions=None, *, cache=None, segment_ids=None, rope_scale=None):
    """As `Llama.hidden`; a `HybridCache` first lifts its prefill padding limits once decoding has begun."""
    if cache is not None and hasattr(cache, "for_step"):
      cache = cache.for_step()
    return super().hidden(tokens, positions, cache=cache, segment_ids=segment_ids, rope_scale=rope_scale)
