"""Tile-level math shared by every Pallas kernel here (Triton, Mosaic TPU) and their jnp references.

All functions take plain arrays (values loaded from refs), so one body serves every target: a kernel loads its
tiles, calls these, and stores. Rows are queries, columns keys; per-row statistics keep a trailing axis of 1
([R, 1]) so they broadcast against [R, C] tiles on every backend.

Online softmax (FlashAttention-2, Dao 2023, Alg. 1) over key tiles j:
  s = scale * q k_j^T (soft-capped),  m' = max(m, rowmax(s)),  c = exp(m - m'),
  l' = c l + rowsum(exp(s - m')),  acc' = c acc + exp(s - m') v_j;   out = acc / l,  lse = m + log l.
Backward (Alg. 2) with D = rowsum(dO * O):  p = exp(s - lse),  dP = dO v^T,  dS = p (dP - D) tanh'(.) scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

F32 = jnp.float32
# A finite "minus infinity" for running maxima: exp(MASK - m) underflows to 0 without inf - inf = NaN.
MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)
# Padding sentinels: padded keys carry segment PAD_KV, padded queries PAD_Q; they never match anything.
PAD_Q_SEGMENT = -2
PAD_KV_SEGMENT = -1


def tile_visible(q_pos, q_seg, kv_pos, kv_seg, *, causal: bool, window: int | None, sink: int):
  """Visibility of a tile, the rule of `lcjax.ops.mask` (causal, window + sinks, same segment).

  Args:
    q_pos, q_seg: [R, 1] int32 positions and segment ids of the rows.
    kv_pos, kv_seg: [1, C] int32 positions and segment ids of the keys.
  Returns:
    [R, C] bool.
  """
  ok = q_seg == kv_seg
  if causal:
    ok &= kv_pos <= q_pos
  if window is not None:
    in_window = q_pos - kv_pos < window
    if sink:
      in_window |= kv_pos < sink
    ok &= in_window
  return ok


def dot_nt(a, b):
  """a [R, H] times b [C, H] transposed -> [R, C] in fp32."""
  return lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=F32)


def dot_tn(a, b):
  """a [R, C] transposed times b [R, H] -> [C, H] in fp32."""
  return lax.dot_general(a, b, (((0,), (0,)), ((), ())), preferred_element_type=F32)


def dot_nn(a, b):
  """a [R, C] times b [C, H] -> [R, H] in fp32."""
  return lax.dot_general(a, b, (((1,), (0,)), ((), ())), preferred_element_type=F32)


def tile_scores(q, k, *, scale: float, softcap: float | None):
  """Scaled, soft-capped scores of a tile and tanh of the cap (None without cap, for the backward).

  Args:
    q: [R, H].  k: [C, H].
  Returns:
    (s [R, C] fp32, tanh [R, C] fp32 or None).
  """
  s = dot_nt(q, k) * scale
  if softcap is None:
    return s, None
  tanh = jnp.tanh(s / softcap)
  return softcap * tanh, tanh


def softmax_init(rows: int, head_dim: int):
  """Initial (m [R, 1], l [R, 1], acc [R, H]) of the online softmax."""
  return (jnp.full((rows, 1), MASK_VALUE, F32), jnp.zeros((rows, 1), F32), jnp.zeros((rows, head_dim), F32))


def softmax_update(s, ok, v, m, l, acc):
  """One online-softmax step over a key tile.

  Args:
    s: [R, C] scores.  ok: [R, C] visibility.  v: [C, H] values.
    m, l: [R, 1] running max and sum.  acc: [R, H] running unnormalised output.
  Returns:
    (m, l, acc) updated.
  """
  s = jnp.where(ok, s, MASK_VALUE)
  m_new = jnp.maximum(m, jnp.max(s, axis=1, keepdims=True))
  corr = jnp.exp(m - m_new)
  p = jnp.where(ok, jnp.exp(s - m_new), 0.0)
  l_new = l * corr + jnp.sum(p, axis=1, keepdims=True)
  return m_new, l_new, acc * corr + dot_nn(p.astype(v.dtype), v)


def softmax_finish(m, l, acc):
  """(out [R, H] fp32, lse [R, 1] fp32); rows with no visible key give out 0 and lse -inf."""
  has = l > 0
  safe = jnp.where(has, l, 1.0)
  return acc / safe, jnp.where(has, m + jnp.log(safe), -jnp.inf)


def tile_grads(q, k, v, d_out, lse, delta, ok, *, scale: float, softcap: float | None):
  """Probabilities and score gradients of a tile for the backward pass.

  Args:
    q: [R, H].  k, v: [C, H].  d_out: [R, H].  lse, delta: [R, 1] fp32.  ok: [R, C].
  Returns:
    (p [R, C] fp32, ds [R, C] fp32) with dq = ds k, dk = ds^T q, dv = p^T dO.
  """
  s, tanh = tile_scores(q, k, scale=scale, softcap=softcap)
  return score_grads(s, tanh, dot_nt(d_out, v), lse, delta, ok, scale=scale)


def score_grads(s, tanh, dp, lse, delta, ok, *, scale: float):
  """p = exp(s - lse) on visible entries and dS = p (dP - D) tanh'(.) scale (elementwise; any broadcastable layout).

  Args:
    s: scores (capped).  tanh: tanh of the cap or None.  dp: dO v^T.  lse, delta: per-row statistics, broadcast
      against s.  ok: visibility.
  Returns:
    (p, ds) fp32, shaped like s.
  """
  lse_safe = jnp.where(lse > MASK_VALUE, lse, 0.0)  # -inf for rows with no visible key (no isfinite on Mosaic GPU)
  p = jnp.where(ok, jnp.exp(s - lse_safe), 0.0)
  ds = p * (dp - delta)
  if tanh is not None:
    ds = ds * (1.0 - tanh * tanh)
  return p, ds * scale


def merge_partials(out, lse, axis: int):
  """Combines attention results over disjoint key sets (the split-K reduction).

  Args:
    out: [..., P, ..., H] fp32 parts, each normalised over its own keys (P along `axis`).
    lse: out's shape without H; -inf for parts with no visible key.
  Returns:
    (out, lse) with axis `axis` reduced; all-empty rows give 0 and -inf.
  """
  total = jax.nn.logsumexp(lse, axis=axis, keepdims=True)
  weight = jnp.exp(lse - jnp.where(jnp.isfinite(total), total, 0.0))
  return jnp.sum(out * weight[..., None], axis=axis), jnp.squeeze(total, axis)


def next_power_of_2(x: int) -> int:
  """Smallest power of two >= x (Triton tiles must be powers of two)."""
  return 1 << max(0, int(x) - 1).bit_length()


def round_up(x: int, m: int) -> int:
  """x rounded up to a multiple of m."""
  return (x + m - 1) // m * m
