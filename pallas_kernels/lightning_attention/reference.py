"""The two oracles of lightning attention, independent of the block math: the naive masked O(T^2) form and the
token-by-token recurrence (MiniMax's decode path). Token-major like `lcjax.ops.linear_attention`.

  naive:      o_t = sum_{j<=t, same run} lambda^(t-j) (q_t . k_j) v_j  +  [run_t = run_0] lambda^(t+1) q_t S_0
  recurrent:  S_t = lambda [run_t = run_(t-1)] S_(t-1) + k_t^T v_t,   o_t = q_t S_t
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pallas_kernels.tile_math import F32


def _expand(q, k, v, state0):
  """k, v repeated to q's heads (GQA) in fp32; a zero initial state when None."""
  b, _, n, h = q.shape
  k, v = (jnp.repeat(x, n // x.shape[2], axis=2).astype(F32) for x in (k, v))
  state0 = jnp.zeros((b, n, h, v.shape[-1]), F32) if state0 is None else state0.astype(F32)
  return q.astype(F32), k, v, state0


def naive_linear_attention(q, k, v, rates, runs, state0=None):
  """Decayed causal linear attention with the full [T, T] decay mask.

  Args:
    q: [B, T, N, H].  k, v: [B, T, K, H].  rates: [N] s >= 0 (lambda = exp(-s)).  runs: [B, T] int32 run ids.
    state0: [B, N, H, H] state before the first token, or None.
  Returns:
    (o [B, T, N, H] in q's dtype, final state [B, N, H, H] fp32).
  """
  dtype, t = q.dtype, q.shape[1]
  q, k, v, state0 = _expand(q, k, v, state0)
  pos = jnp.arange(t)
  diff = (pos[:, None] - pos[None, :]).astype(F32)                           # [T, T] t - j
  live = (diff >= 0)[None] & (runs[:, :, None] == runs[:, None, :])          # [B, T, T]
  mask = jnp.where(live[:, None], jnp.exp(-rates[None, :, None, None] * jnp.where(diff >= 0, diff, 0)), 0.0)
  scores = jnp.einsum("btnh,bsnh->bnts", q, k) * mask
  first = (runs == runs[:, :1])                                              # [B, T] sees the initial state
  q_decay = jnp.exp(-rates[None, :, None] * (pos + 1.0)[None, None]) * first[:, None]   # [B, N, T]
  o = jnp.einsum("bnts,bsnh->btnh", scores, v) + jnp.einsum("btnh,bnhe,bnt->btne", q, state0, q_decay)
  return o.astype(dtype), _final_state(k, v, rates, runs, state0)


def _final_state(k, v, rates, runs, state0):
  t = k.shape[1]
  pos = jnp.arange(t)
  last = runs[:, -1:] == runs                                                # [B, T] enter the final state
  k_decay = jnp.exp(-rates[None, :, None] * (t - 1.0 - pos)[None, None]) * last[:, None]
  keep = jnp.exp(-rates * t)[None, :, None, None] * (runs[:, -1] == runs[:, 0])[:, None, None, None]
  return keep * state0 + jnp.einsum("btnh,bnt,btne->bnhe", k, k_decay, v)


def final_state(k, v, rates, runs, state0=None, num_heads: int | None = None):
  """The state after a chunk, without its outputs (LASP's local state): O(T H^2).

  S_T = lambda^T [one run] S_0 + sum_{j in the last run} lambda^(T-1-j) k_j^T v_j.
  Args:
    k, v: [B, T, K, H].  rates: [N].  runs: [B, T].  state0: [B, N, H, H] or None.  num_heads: N (default K).
  Returns:
    [B, N, H, H] fp32.
  """
  n = num_heads or k.shape[2]
  dummy = jnp.zeros(k.shape[:2] + (n, k.shape[3]), k.dtype)
  _, k, v, state0 = _expand(dummy, k, v, state0)
  return _final_state(k, v, rates.astype(F32), runs, state0)


def recurrent_linear_attention(q, k, v, rates, runs, state0=None):
  """The recurrence, one token per `lax.scan` step. Same arguments and results as `naive_linear_attention`."""
  dtype = q.dtype
  q, k, v, state0 = _expand(q, k, v, state0)
  lam = jnp.exp(-rates)[None, :, None, None]
  keep = jnp.concatenate([jnp.ones_like(runs[:, :1], bool), runs[:, 1:] == runs[:, :-1]], axis=1)

  def step(state, x):
    q_t, k_t, v_t, keep_t = x
    state = lam * keep_t[:, None, None, None] * state + jnp.einsum("bnh,bne->bnhe", k_t, v_t)
    return state, jnp.einsum("bnh,bnhe->bne", q_t, state)

  xs = tuple(jnp.swapaxes(x, 0, 1) for x in (q, k, v, keep))
  state, o = jax.lax.scan(step, state0, xs)
  return jnp.swapaxes(o, 0, 1).astype(dtype), state
