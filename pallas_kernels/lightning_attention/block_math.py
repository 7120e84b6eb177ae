"""Tile math of lightning attention (MiniMax-01 / Lightning-2), shared by the XLA scan and every Pallas target.

One tile is C consecutive tokens of one (batch, head); local rows a = 1..C (1-indexed like the official code), of
which the first m are real (m < C only in a padded last block). With rate s (lambda = exp(-s)) and the state S
[H, H] (fp32) at the block start:
  O_intra = [(Q K^T) * M] V,   M_ab = lambda^(a-b) [a >= b] [run_a == run_b]            (the "left product")
  O_inter = (diag(lambda^a [run_a == run_prev]) Q) S                                   (the "right product")
  S'      = lambda^m [run_last == run_prev] S + (diag(lambda^(m-a) [a <= m, run_a == run_last]) K)^T V
`run` ids number the documents (segment runs) of a packed row: the state crosses a block boundary only inside one
document. `run_prev` is the run of the token before the block, `run_last` the run of its last real token.

Backward (reverse of the same split): with dS the cotangent of S',
  dQ = [(dO V^T) * M] K + diag(q decay) dO S^T,                      (forward scan: needs S)
  dK = [(dO V^T) * M]^T Q + diag(k decay) V dS^T,   dV = [(Q K^T) * M]^T dO + diag(k decay) K dS,
  dS_prev = block decay * dS + (diag(q decay) Q)^T dO                (reverse scan: needs dS only)
Every product accumulates in fp32, as the official kernels do.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from pallas_kernels.tile_math import F32, dot_nn, dot_nt, dot_tn


class Decays(NamedTuple):
  """Decay factors of one tile: intra [C, C], q [C, 1], k [C, 1] and the scalar block decay (all fp32)."""

  intra: jax.Array
  q: jax.Array
  k: jax.Array
  block: jax.Array


def tile_decays(rate, run_col, run_row, run_prev, run_last, m) -> Decays:
  """The tile's decay factors.

  Args:
    rate: scalar fp32 s >= 0 (lambda = exp(-s)).  run_col: [C, 1] int32 run ids.  run_row: [1, C] the same ids.
    run_prev, run_last: scalar int32 runs of the token before the block and of its last real token.
    m: scalar int32 real rows in the block.
  Returns:
    `Decays`; padded rows (a > m) get zero k decay, so they never enter the state.
  """
  c = run_col.shape[0]
  a_col = jax.lax.broadcasted_iota(jnp.int32, (c, 1), 0) + 1
  a_row = jax.lax.broadcasted_iota(jnp.int32, (1, c), 1) + 1
  diff = a_col - a_row
  live = (diff >= 0) & (run_col == run_row)
  intra = jnp.where(live, jnp.exp(-rate * jnp.where(live, diff, 0).astype(F32)), 0.0)
  q = jnp.where(run_col == run_prev, jnp.exp(-rate * a_col.astype(F32)), 0.0)
  in_state = (a_col <= m) & (run_col == run_last)
  k = jnp.where(in_state, jnp.exp(-rate * jnp.where(in_state, m - a_col, 0).astype(F32)), 0.0)
  block = jnp.where(run_last == run_prev, jnp.exp(-rate * m.astype(F32)), 0.0)
  return Decays(intra, q, k, block)


def _f32(*xs):
  return tuple(x.astype(F32) for x in xs)


def next_state(k, v, state, d: Decays):
  """S' = block decay * S + (k decay * K)^T V: [H, H] fp32."""
  k, v = _f32(k, v)
  return d.block * state + dot_tn(k * d.k, v)


def tile_forward(q, k, v, state, d: Decays):
  """One block forward: q, k, v [C, H], state [H, H] fp32 -> (o [C, H] fp32, next state)."""
  q, k, v = _f32(q, k, v)
  o = dot_nn(dot_nt(q, k) * d.intra, v) + dot_nn(q * d.q, state)
  return o, next_state(k, v, state, d)


def tile_dq(k, v, d_out, state, d: Decays):
  """dQ of one block (forward scan order): [C, H] fp32; the caller advances the state with `next_state`."""
  k, v, d_out = _f32(k, v, d_out)
  return dot_nn(dot_nt(d_out, v) * d.intra, k) + dot_nt(d_out, state) * d.q


def tile_dkv(q, k, v, d_out, d_state, d: Decays):
  """dK, dV of one block and the state cotangent at its start (reverse scan order).

  Args:
    q, k, v, d_out: [C, H].  d_state: [H, H] fp32 cotangent of the state after the block.
  Returns:
    (dk [C, H], dv [C, H], d_state before the block [H, H]), fp32.
  """
  q, k, v, d_out = _f32(q, k, v, d_out)
  dp = dot_nt(d_out, v) * d.intra                       # [a, j]
  p = dot_nt(q, k) * d.intra
  dk = dot_tn(dp, q) + dot_nt(v, d_state) * d.k
  dv = dot_tn(p, d_out) + dot_nn(k, d_state) * d.k
  return dk, dv, d.block * d_state + dot_tn(q * d.q, d_out)
