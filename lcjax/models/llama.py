"""Llama-family decoder (Touvron et al. 2023): pre-norm blocks of GQA attention with RoPE and a SwiGLU MLP.

  h = x + Attn(RMSNorm(x));  y = h + MLP(RMSNorm(h));  logits = RMSNorm(y_L) W_out  (W_out = E^T when tied)

Construct with NNX, then `nnx.split` once and call `forward(graphdef, state, ...)` inside jitted step functions.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from lcjax.config import ModelConfig
from lcjax.layers.attention import Attention
from lcjax.layers.embed import Embed
from lcjax.layers.mlp import SwiGLU
from lcjax.layers.norm import RMSNorm
from lcjax.layers.rope import rope_cos_sin, rope_frequencies
from lcjax.ops.mask import MaskSpec
from lcjax.quant.linear import dense
from lcjax.sharding import axes
from lcjax.sharding.partition import constrain

_ACT = (axes.ACT_BATCH, axes.ACT_SEQ, axes.ACT_EMBED)


class Block(nnx.Module):
  """One decoder layer: pre-norm attention and pre-norm SwiGLU, each with a residual."""

  def __init__(self, cfg: ModelConfig, *, key: jax.Array):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    pd = jnp.dtype(cfg.param_dtype)
    self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps, key=k1, param_dtype=pd)
    self.attn = Attention(cfg, key=k2)
    self.mlp_norm = RMSNorm(cfg.dim, cfg.norm_eps, key=k3, param_dtype=pd)
    self.mlp = SwiGLU(cfg.dim, cfg.mlp_dim, key=k4, param_dtype=pd)

  def __call__(self, x, cos, sin, mask, layer_cache=None):
    """[B, T, D] -> ([B, T, D], layer cache). Activations are tagged with `memory.remat.ACTIVATION_NAMES`."""
    x = checkpoint_name(x, "decoder_layer_input")
    attn_out, layer_cache = self.attn(self.attn_norm(x), cos, sin, mask, layer_cache)
    h = constrain(x + checkpoint_name(attn_out, "attn_out"), _ACT)
    return constrain(h + checkpoint_name(self.mlp(self.mlp_norm(h)), "mlp_out"), _ACT), layer_cache


class Llama(nnx.Module):
  """The decoder. Args: cfg (ModelConfig), key (PRNG key for initialisation)."""

  def __init__(self, cfg: ModelConfig, *, key: jax.Array):
    self.cfg = cfg
    pd = jnp.dtype(cfg.param_dtype)
    keys = jax.random.split(key, cfg.num_layers + 3)
    self.embed = Embed(cfg.vocab_size, cfg.dim, key=keys[0], param_dtype=pd)
    self.layers = nnx.List([self.make_block(cfg, i, keys[i + 1]) for i in range(cfg.num_layers)])
    self.norm = RMSNorm(cfg.dim, cfg.norm_eps, key=keys[-2], param_dtype=pd)
    if not cfg.tie_embeddings:
      self.lm_head = axes.param(keys[-1], (cfg.dim, cfg.vocab_size), (axes.EMBED, axes.VOCAB), pd)

  def make_block(self, cfg: ModelConfig, layer: int, key: jax.Array) -> nnx.Module:
    """Layer `layer`'s block (architectures with other block types override this)."""
    return Block(cfg, key=key)

  def mask_for(self, positions, segment_ids=None, cached: bool = False) -> MaskSpec:
    """The model's mask: causal, its sliding window and sinks, documents from segment ids."""
    return MaskSpec(causal=True, window=self.cfg.sliding_window, sink=self.cfg.attention_sinks,
                    q_segment_ids=segment_ids, kv_segment_ids=segment_ids,
                    q_positions=positions, kv_positions=None if cached else positions)

  def layer_mask(self, mask: MaskSpec, layer: int) -> MaskSpec:
    """Layer `layer`'s mask: with a LongGen `sparse_pattern`, sparse on every layer but the full-attention ones."""
    pattern = self.cfg.sparse_pattern
    if pattern is None or layer in self.cfg.full_attention_layers:
      return mask
    return dataclasses.replace(mask, sparse_blocks=tuple(pattern))

  def hidden(self, tokens, positions=None, *, cache=None, segment_ids=None, rope_scale=None):
    """Final normalised hidden states.

    Args:
      tokens: [B, T] int token ids.
      positions: [B, T] int absolute positions (default arange(T)); with a cache, where tokens are written.
      cache: None (no cache) or a `KVCache`-like pytree with `.layers`.
      segment_ids: [B, T] document ids for packed sequences (no cache).
      rope_scale: optional [B] float per-sample position-interpolation scale g: RoPE rotates by positions / g
        (E^2-LLM's training-time scale augmentation); the mask keeps the integer positions.
    Returns:
      ([B, T, D] hidden states, updated cache or None).
    """
    cfg = self.cfg
    dtype = jnp.dtype(cfg.dtype)
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
    inv_freq, attn_factor = rope_frequencies(cfg.rope, cfg.head_dim, cfg.max_seq_len)
    rope_positions = positions if rope_scale is None else positions / rope_scale.astype(jnp.float32)[:, None]
    cos, sin = rope_cos_sin(rope_positions, inv_freq, attn_factor)
    mask = self.mask_for(positions, segment_ids, cached=cache is not None)
    x = constrain(self.embed(tokens, dtype), _ACT)
    new_layers = []
    for i, block in enumerate(self.layers):
      x, layer_cache = block(x, cos, sin, self.layer_mask(mask, i), None if cache is None else cache.layers[i])
      new_layers.append(layer_cache)
    if cache is not None:
      cache = type(cache)(**{**vars(cache), "layers": tuple(new_layers)})
    return self.norm(x), cache

  def logits(self, h: jax.Array) -> jax.Array:
    """Output head: [B, T, D] -> [B, T, V] fp32."""
    if self.cfg.tie_embeddings:
      logits = self.embed.attend(h)
    else:
      logits = dense("btd,dv->btv", h, self.lm_head, preferred_element_type=jnp.float32)
    return constrain(logits, (axes.ACT_BATCH, axes.ACT_SEQ, axes.ACT_VOCAB))

  def __call__(self, tokens, positions=None, *, cache=None, segment_ids=None, logits_at=None, rope_scale=None):
    """Logits of the next token.

    Args:
      tokens, positions, cache, segment_ids, rope_scale: as in `hidden`.
      logits_at: optional [B] int index into T per row; only those rows' logits are computed ([B, 1, V]).
    Returns:
      ([B, T, V] or [B, 1, V] fp32 logits, updated cache or None).
    """
    h, cache = self.hidden(tokens, positions, cache=cache, segment_ids=segment_ids, rope_scale=rope_scale)
    if logits_at is not None:
      h = jnp.take_along_axis(h, logits_at[:, None, None], axis=1)
    return self.logits(h), cache


def forward(graphdef, state, tokens, positions=None, **kwargs):
  """Functional call: merges (graphdef, state) and runs `Llama.__call__`; use inside `jax.jit`."""
  return nnx.merge(graphdef, state)(tokens, positions, **kwargs)
