"""LongSpec's draft model (Yang, Du et al. 2025, arXiv 2502.17421): one decoder layer, constant memory.

  h = E_target(x)                                         target's (frozen) embedding
  h = h + SelfAttn_SWA(RMSNorm(h))                        own q/k/v/o (bias on q, k, v), RoPE, sliding window W
  h = h + CrossAttn(RMSNorm(h); K, V = target's LAST-layer cache)   only q and o projections: no new KV
  h = h + MLP(RMSNorm(h))
  logits = LMHead_target(h)                               no final norm (as in the official code)

The self-attention keys/values live in a ring buffer of W + D + 1 slots (`RingKV`; D = draft depth, so drafted
positions never evict a key still inside the window): draft memory does not grow with the context. The
cross-attention reads the target's committed cache; a draft query at position n + j sees target keys < n (the
unverified drafts have no target KV yet), which training mimics by hiding the newest pad ~ U{1..4} target keys.

Training (`lcjax.training.longspec.train_longspec`): next-token CE through the frozen LM head on short
sequences with Anchor-Offset position ids (`anchor_offset_positions`) so the draft meets long positions.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.config import ModelConfig
from lcjax.errors import ConfigError
from lcjax.layers.attention import Attention
from lcjax.layers.mlp import SwiGLU
from lcjax.layers.norm import RMSNorm
from lcjax.layers.rope import apply_rope, rope_cos_sin, rope_frequencies
from lcjax.ops.attention import attention
from lcjax.ops.mask import MaskSpec
from lcjax.kvcache.attend import attend_rows
from lcjax.ops.tree_attention import dense_prefix, merge_lse, tree_part
from lcjax.sharding import axes

EMPTY = 2**30  # position of an empty ring slot: after every query, so the causal mask hides it


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RingKV:
  """The draft's sliding-window self-attention cache: R slots, position p in slot p % R.

  Attributes:
    k, v: [B, R, K, H] token-major keys (after RoPE) and values.  pos: [B, R] int32 position per slot (EMPTY).
    window: W, the attended window (static; R >= W + draft depth + 1).
  """

  k: jax.Array
  v: jax.Array
  pos: jax.Array
  window: int = dataclasses.field(metadata=dict(static=True))

  @classmethod
  def zeros(cls, batch: int, slots: int, window: int, num_kv_heads: int, head_dim: int, dtype=jnp.float32):
    shape = (batch, slots, num_kv_heads, head_dim)
    return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype), jnp.full((batch, slots), EMPTY, jnp.int32), window)

  def update(self, k, v, positions, valid=None) -> "RingKV":
    """Writes k, v [B, T, K, H] at positions [B, T] (slot = position % R; `valid` False entries are skipped)."""
    r = self.k.shape[1]
    slots = positions % r if valid is None else jnp.where(valid, positions % r, r)
    rows = jnp.arange(k.shape[0])[:, None]
    put = lambda buf, new: buf.at[rows, slots].set(new.astype(buf.dtype), mode="drop")  # noqa: E731
    return RingKV(put(self.k, k), put(self.v, v), put(self.pos, positions.astype(jnp.int32)), self.window)

  def attend(self, q, mask: MaskSpec, *, attention_impl: str = "auto", softcap=None, **_):
    """Causal sliding-window attention of q [B, T, N, H] at mask.q_positions over the ring."""
    ring_mask = MaskSpec(causal=True, window=self.window, q_positions=mask.q_positions, kv_positions=self.pos)
    return attention(q, self.k.astype(q.dtype), self.v.astype(q.dtype), mask=ring_mask, impl=attention_impl,
                     softcap=softcap)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DraftTreeKV:
  """The draft's self-attention cache while it expands one depth of a draft tree (LongSpec's tree drafting): the
  ring holds the verified context (positions <= root), the tree nodes' keys/values sit in a buffer. A node sees the
  ring inside its window and, in the buffer, itself and its ancestors (hybrid tree attention, merged by lse).

  Attributes:
    ring: RingKV.  buf_k, buf_v: [B, Tt, K, H] keys/values of the non-root tree nodes.  visible: [B, T, Tt] bool
    this depth's nodes over the buffer.  root: [B] int32 the root's position (ring keys after it are stale).
    offset: buffer slot of this depth's first node (static).
  """

  ring: RingKV
  buf_k: jax.Array
  buf_v: jax.Array
  visible: jax.Array
  root: jax.Array
  offset: int = dataclasses.field(metadata=dict(static=True))

  def update(self, k, v, positions) -> "DraftTreeKV":
    put = lambda buf, new: jax.lax.dynamic_update_slice_in_dim(buf, new.astype(buf.dtype), self.offset, 1)  # noqa
    return dataclasses.replace(self, buf_k=put(self.buf_k, k), buf_v=put(self.buf_v, v))

  def attend(self, q, mask: MaskSpec, *, softcap=None, **_):
    """Nodes q [B, T, N, H] at one depth (all at position mask.q_positions[:, 0])."""
    ring, qpos = self.ring, mask.q_positions[:, 0]
    in_window = (ring.pos <= self.root[:, None]) & (ring.pos > (qpos - ring.window)[:, None])
    kv_pos = jnp.broadcast_to(jnp.where(in_window, ring.pos, EMPTY)[:, None], (q.shape[0], ring.k.shape[2],
                                                                               ring.k.shape[1]))
    out_p, lse_p = attend_rows(q, jnp.swapaxes(ring.k, 1, 2), jnp.swapaxes(ring.v, 1, 2), kv_pos, qpos + 1,
                               softcap=softcap)
    out_t, lse_t = tree_part(q, self.buf_k.astype(q.dtype), self.buf_v.astype(q.dtype), self.visible,
                             softcap=softcap)
    return merge_lse(out_p, lse_p, out_t, lse_t)[0]


class LongSpecDraft(nnx.Module):
  """The one-layer draft for a target of config `cfg` (it has no embedding or head of its own).

  Args:
    cfg: the target's ModelConfig.  window: self-attention window W.  key: PRNG key.
  """

  def __init__(self, cfg: ModelConfig, *, window: int = 512, key: jax.Array):
    if window < 1:
      raise ConfigError(f"LongSpec window must be >= 1, got {window}")
    ks = jax.random.split(key, 7)
    pd = jnp.dtype(cfg.param_dtype)
    d, n, h = cfg.dim, cfg.num_heads, cfg.head_dim
    self.cfg, self.window = cfg, window
    self.self_norm = RMSNorm(d, cfg.norm_eps, key=ks[0], param_dtype=pd)
    self.self_attn = Attention(cfg.replace(attention_bias=True), key=ks[1])
    self.cross_norm = RMSNorm(d, cfg.norm_eps, key=ks[2], param_dtype=pd)
    self.cross_q = axes.param(ks[3], (d, n, h), (axes.EMBED, axes.Q_HEADS, axes.HEAD_DIM), pd)
    self.cross_o = axes.param(ks[4], (n, h, d), (axes.Q_HEADS, axes.HEAD_DIM, axes.EMBED), pd)
    self.mlp_norm = RMSNorm(d, cfg.norm_eps, key=ks[5], param_dtype=pd)
    self.mlp = SwiGLU(d, cfg.mlp_dim, key=ks[6], param_dtype=pd)

  def _rope(self, positions):
    inv_freq, factor = rope_frequencies(self.cfg.rope, self.cfg.head_dim, self.cfg.max_seq_len)
    return rope_cos_sin(positions, inv_freq, factor)

  def _cross(self, h, cos, sin, attend):
    """Cross-attention sublayer: q = RoPE(RMSNorm(h) W_q); attend(q) -> [B, T, N, H]; back through W_o."""
    x = self.cross_norm(h)
    q = apply_rope(jnp.einsum("btd,dnh->btnh", x, self.cross_q[...].astype(x.dtype)), cos, sin)
    return h + jnp.einsum("btnh,nhd->btd", attend(q).astype(x.dtype), self.cross_o[...].astype(x.dtype))

  def train_logits(self, target, tokens, positions, target_k, target_v, pad):
    """Teacher-forced logits [B, T, V] over a whole sequence.

    Args:
      target: the (frozen) target model (embedding and head).  tokens, positions: [B, T] (Anchor-Offset ids).
      target_k, target_v: [B, T, K, H] the target's last-layer keys (after RoPE) / values of the same sequence.
      pad: [B] int lag: query t sees target keys at indices <= t - pad.
    """
    dt = jnp.dtype(self.cfg.dtype)
    cos, sin = self._rope(positions)
    h = target.embed(tokens, dt)
    self_mask = MaskSpec(causal=True, window=self.window, q_positions=positions, kv_positions=positions)
    h = h + self.self_attn(self.self_norm(h), cos, sin, self_mask)[0]
    idx = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
    lag = MaskSpec(causal=True, q_positions=idx - pad[:, None], kv_positions=idx)
    h = self._cross(h, cos, sin, lambda q: attention(q, target_k.astype(q.dtype), target_v.astype(q.dtype),
                                                     mask=lag))
    h = h + self.mlp(self.mlp_norm(h))
    return target.logits(h)

  def step(self, target, tokens, positions, ring, cross_k, cross_v, cross_len):
    """Draft decode of tokens [B, T] at positions [B, T] -> (logits [B, T, V], self-attention cache).

    ring: a `RingKV` (chain) or `DraftTreeKV` (one depth of a tree).  cross_k, cross_v: [B, K, S, H] the target's
    last-layer cache (heads-major); cross_len [B] committed length.
    """
    dt = jnp.dtype(self.cfg.dtype)
    cos, sin = self._rope(positions)
    h = target.embed(tokens, dt)
    attn, ring = self.self_attn(self.self_norm(h), cos, sin, MaskSpec(causal=True, q_positions=positions), ring)
    h = h + attn
    h = self._cross(h, cos, sin, lambda q: dense_prefix(q, cross_k.astype(q.dtype), cross_v.astype(q.dtype),
                                                        cross_len)[0])
    h = h + self.mlp(self.mlp_norm(h))
    return target.logits(h), ring

  def ring_keys(self, target, tokens, positions):
    """Self-attention keys/values [B, T, K, H] of tokens at positions (they depend on the tokens only)."""
    dt = jnp.dtype(self.cfg.dtype)
    cos, sin = self._rope(positions)
    _, k, v = self.self_attn.project_qkv(self.self_norm(target.embed(tokens, dt)), cos, sin)
    return k, v


def anchor_offset_positions(length: int, max_len: int, rng: np.random.Generator, *, max_sink: int = 4,
                            offset_cap: int = 30000, plain_above: int = 1200) -> np.ndarray:
  """LongSpec's Anchor-Offset position ids for a training sequence of `length` tokens.

  pos = [0 .. sink-1] ++ [sink + O .. length - 1 + O], sink ~ U{0..max_sink}, O ~ U{0..max(min(offset_cap,
  max_len - 1000) - length, 0)}; sequences longer than `plain_above` keep 0..length-1.

  Returns:
    [length] int32, strictly increasing, max < min(offset_cap, max_len - 1000) (or length).
  """
  if length > plain_above:
    return np.arange(length, dtype=np.int32)
  sink = int(rng.integers(0, max_sink + 1))
  top = max(min(offset_cap, max_len - 1000) - length, 0)
  offset = int(rng.integers(0, top + 1))
  pos = np.arange(length, dtype=np.int64)
  pos[sink:] += offset
  return pos.astype(np.int32)


def last_layer_kv(target, tokens, positions):
  """The target's last-layer keys (after RoPE) and values [B, T, K, H] of a sequence (no cache)."""
  cfg = target.cfg
  inv_freq, factor = rope_frequencies(cfg.rope, cfg.head_dim, cfg.max_seq_len)
  cos, sin = rope_cos_sin(positions, inv_freq, factor)
  mask = target.mask_for(positions)
  x = target.embed(tokens, jnp.dtype(cfg.dtype))
  for i, block in enumerate(target.layers[:-1]):
    x, _ = block(x, cos, sin, target.layer_mask(mask, i))
  last = target.layers[-1]
  _, k, v = last.attn.project_qkv(last.attn_norm(x), cos, sin)
  return k, v


def save_draft(directory: str, draft_state, window: int) -> None:
  """Saves the draft's params (orbax) and its window (JSON) under `directory`."""
  from lcjax.checkpoint.orbax_io import save_params

  os.makedirs(directory, exist_ok=True)
  save_params(os.path.join(directory, "params"), jax.device_get(draft_state))
  with open(os.path.join(directory, "longspec.json"), "w") as f:
    json.dump({"window": window}, f)


def load_draft(directory: str, target_cfg: ModelConfig):
  """(graphdef, state, window) of a draft saved by `save_draft` for a target of config `target_cfg`."""
  from lcjax.checkpoint.orbax_io import restore_params

  with open(os.path.join(directory, "longspec.json")) as f:
    window = int(json.load(f)["window"])
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: LongSpecDraft(target_cfg, window=window,
                                                                      key=jax.random.PRNGKey(0))))
  return graphdef, restore_params(os.path.join(directory, "params"), abstract), window
