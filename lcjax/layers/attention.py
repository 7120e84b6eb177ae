"""Grouped-query self-attention block with RoPE, through `lcjax.ops.attention` (or a cache's `attend`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from lcjax.config import ModelConfig
from lcjax.layers.rope import apply_rope
from lcjax.ops.attention import attention
from lcjax.ops.mask import MaskSpec
from lcjax.quant.linear import dense
from lcjax.sharding import axes
from lcjax.sharding.partition import constrain


class Attention(nnx.Module):
  """q = x W_q, k = x W_k, v = x W_v (GQA: K kv heads shared by G = N/K query heads each), RoPE on q and k,
  softmax(q k^T / sqrt(H)) v, output W_o.

  Args:
    cfg: the model config.  key: PRNG key.
  """

  def __init__(self, cfg: ModelConfig, *, key: jax.Array):
    d, n, k, h = cfg.dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    pd = jnp.dtype(cfg.param_dtype)
    kq, kk, kv, ko = jax.random.split(key, 4)
    self.wq = axes.param(kq, (d, n, h), (axes.EMBED, axes.Q_HEADS, axes.HEAD_DIM), pd)
    self.wk = axes.param(kk, (d, k, h), (axes.EMBED, axes.KV_HEADS, axes.HEAD_DIM), pd)
    self.wv = axes.param(kv, (d, k, h), (axes.EMBED, axes.KV_HEADS, axes.HEAD_DIM), pd)
    self.wo = axes.param(ko, (n, h, d), (axes.Q_HEADS, axes.HEAD_DIM, axes.EMBED), pd)
    if cfg.attention_bias:
      self.bq = axes.param(kq, (n, h), (axes.Q_HEADS, axes.HEAD_DIM), pd, init="zeros")
      self.bk = axes.param(kk, (k, h), (axes.KV_HEADS, axes.HEAD_DIM), pd, init="zeros")
      self.bv = axes.param(kv, (k, h), (axes.KV_HEADS, axes.HEAD_DIM), pd, init="zeros")
    self.use_bias = cfg.attention_bias
    self.attention_impl = cfg.attention_impl
    self.decode_impl = cfg.decode_impl

  def project_qkv(self, x: jax.Array, cos: jax.Array, sin: jax.Array):
    """x [B, T, D] -> q [B, T, N, H], k, v [B, T, K, H] with RoPE applied to q and k."""
    dt = x.dtype
    q = dense("btd,dnh->btnh", x, self.wq)
    k = dense("btd,dkh->btkh", x, self.wk)
    v = dense("btd,dkh->btkh", x, self.wv)
    if self.use_bias:
      q, k, v = q + self.bq[...].astype(dt), k + self.bk[...].astype(dt), v + self.bv[...].astype(dt)
    q, k, v = apply_rope(q, cos, sin), apply_rope(k, cos, sin), v
    return tuple(checkpoint_name(t, "attn_qkv") for t in (q, k, v))

  def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array, mask: MaskSpec, layer_cache=None):
    """Self-attention of x [B, T, D].

    Args:
      cos, sin: [B, T, H] RoPE tables at the tokens' positions.
      mask: visibility; with a cache, `mask.q_positions` are where the new tokens are written.
      layer_cache: None (attend within x) or a layer cache with `update(k, v, positions)` and `attend(q, mask)`.
    Returns:
      ([B, T, D], updated layer cache or None).
    """
    q, k, v = self.project_qkv(x, cos, sin)
    q = constrain(q, (axes.ACT_BATCH, axes.ACT_SEQ, axes.ACT_HEADS, None))
    k, v = (constrain(t, (axes.ACT_BATCH, axes.ACT_KV_SEQ, axes.ACT_KV_HEADS, None)) for t in (k, v))
    if layer_cache is None:
      out = attention(q, k, v, mask=mask, impl=self.attention_impl)
    else:
      layer_cache = layer_cache.update(k, v, mask.q_positions)
      if hasattr(layer_cache, "observe"):  # KV methods that learn from the queries (A^2ATS, SpeContext)
        layer_cache = layer_cache.observe(q, mask.q_positions)
      out = layer_cache.attend(q, mask, attention_impl=self.attention_impl, decode_impl=self.decode_impl)
    out = constrain(out, (axes.ACT_BATCH, axes.ACT_SEQ, axes.ACT_HEADS, None))
    # One [B, T, N*H] x [N*H, D] product: XLA CPU copies W_o to a transposed layout for the 4-D contraction.
    b, t, n, h = out.shape
    y = dense("btf,fd->btd", out.reshape(b, t, n * h), self.wo, shape=(n * h, -1))
    return constrain(y, (axes.ACT_BATCH, axes.ACT_SEQ, axes.ACT_EMBED)), layer_cache
