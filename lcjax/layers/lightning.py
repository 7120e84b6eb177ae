"""MiniMax lightning-attention mixer (MiniMax-01/M1 `MiniMaxM1LightningAttention`), through `ops.linear_attention`.

  [q | k | v] = silu(x W_qkv)            no bias, no RoPE, no 1/sqrt(H) (the decay schedule may add a scale)
  o = LinearAttention(q, k, v; lambda_{l,h})   decayed causal linear attention, fp32 state
  y = W_o [ sigmoid(x W_g) * RMSNorm_{N*H}(concat_h o_h) ]   one RMSNorm over all heads (eps 1e-6), output gate
Heads: N for q, k and v alike (MiniMax's lightning layers have no GQA). H*N need not equal D (MiniMax-01#27).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from lcjax.config import ModelConfig
from lcjax.layers.norm import RMSNorm
from lcjax.ops.linear_attention import linear_attention
from lcjax.ops.linear_decay import DECAY_SCHEDULES
from lcjax.sharding import axes
from lcjax.sharding.partition import constrain

NORM_EPS = 1e-6  # MiniMaxM1RMSNorm's default, used for the N*H output norm


class LightningAttention(nnx.Module):
  """The mixer of a lightning layer.

  Args:
    cfg: model config (`decay_schedule`, `linear_attention_impl`, `linear_block_size`).  layer: its index l
      (the decay depends on l / (L - 1)).  key: PRNG key.
  """

  def __init__(self, cfg: ModelConfig, layer: int, *, key: jax.Array):
    d, n, h = cfg.dim, cfg.num_heads, cfg.head_dim
    pd = jnp.dtype(cfg.param_dtype)
    kq, kk, kv, kg, ko, kn = jax.random.split(key, 6)
    names = (axes.EMBED, axes.Q_HEADS, axes.HEAD_DIM)
    self.wq, self.wk, self.wv, self.wg = (axes.param(kx, (d, n, h), names, pd) for kx in (kq, kk, kv, kg))
    self.wo = axes.param(ko, (n, h, d), (axes.Q_HEADS, axes.HEAD_DIM, axes.EMBED), pd)
    self.norm = RMSNorm(n * h, NORM_EPS, key=kn, param_dtype=pd)
    schedule = DECAY_SCHEDULES.get(cfg.decay_schedule)
    rates = schedule.rates(n, layer, cfg.num_layers)
    self.scale = float(schedule.scale(h))
    self.learnable = schedule.learnable
    if self.learnable:  # s = exp(theta), theta initialised at the schedule's rates
      self.log_rate = axes.param(kn, (n,), (axes.Q_HEADS,), jnp.float32, init="zeros")
      self.log_rate[...] = jnp.log(jnp.asarray(rates, jnp.float32))
    self.rates = tuple(float(r) for r in rates)  # static
    self.impl, self.block_size = cfg.linear_attention_impl, cfg.linear_block_size

  def decay(self) -> jax.Array:
    """[N] fp32 rates s_{l,h} (lambda = exp(-s))."""
    if self.learnable:
      return jnp.exp(self.log_rate[...].astype(jnp.float32))
    return jnp.asarray(np.asarray(self.rates, np.float32))

  def __call__(self, x, cos, sin, mask, layer_cache=None):
    """x [B, T, D] -> ([B, T, D], layer cache). cos/sin are unused (no RoPE); `mask` gives segment ids and, with
    a cache (a `RecurrentLayerState`), the positions."""
    dt = x.dtype
    act = (axes.ACT_BATCH, axes.ACT_SEQ, axes.ACT_HEADS, None)
    q, k, v = (constrain(jax.nn.silu(jnp.einsum("btd,dnh->btnh", x, w[...].astype(dt))), act)
               for w in (self.wq, self.wk, self.wv))
    q, k, v = (checkpoint_name(t, "attn_qkv") for t in (q, k, v))
    if layer_cache is None:
      out = linear_attention(q, k, v, self.decay(), segment_ids=mask.q_segment_ids, impl=self.impl,
                             block_size=self.block_size, scale=self.scale)
    else:
      out, layer_cache = layer_cache.mix(q, k, v, self.decay(), mask.q_positions, impl=self.impl,
                                         block_size=self.block_size, scale=self.scale)
    b, t, n, h = out.shape
    out = self.norm(constrain(out, act).reshape(b, t, n * h))
    gate = jax.nn.sigmoid(jnp.einsum("btd,dnh->btnh", x, self.wg[...].astype(dt))).reshape(b, t, n * h)
    y = jnp.einsum("btf,fd->btd", gate * out, self.wo[...].astype(dt).reshape(n * h, -1))
    return constrain(y, (axes.ACT_BATCH, axes.ACT_SEQ, axes.ACT_EMBED)), layer_cache
