"""Lightning attention (MiniMax-01's blocked decayed linear attention) on XLA and Pallas targets, custom VJP.

Targets: "xla" (`lax.scan` over blocks), "triton" (`pl.pallas_call` via Triton), "tpu" (Mosaic TPU). All share
`block_math`; the oracles are in `reference`. The decay-rate gradient uses the closed form (positions p = 1..Tp)
  dL/ds = -( sum_t p_t <dO_t, O_t> + T <dS_T, S_T> - sum_j p_j <dV_j, V_j> )
which holds because every term carries lambda^(p_t - p_j), lambda^(p_t) or lambda^(T - p_j) (see NOTES-issue-12).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from pallas_kernels.lightning_attention import gpu_triton, tpu, xla
from pallas_kernels.lightning_attention.layout import (LightningConfig, from_heads_major, pad_runs, runs_of,
                                                       to_heads_major)
from pallas_kernels.lightning_attention.reference import (final_state, naive_linear_attention,
                                                          recurrent_linear_attention)
from pallas_kernels.tile_math import F32


class Target(NamedTuple):
  """forward(q, k, v, rates, state0, runs, cfg=) -> (o, state); backward(..., d_out, d_state, cfg=) -> grads."""

  forward: Callable
  backward: Callable
  check: Callable[[int, int], None]  # (block C, head dim H) -> raises ValueError if the target cannot tile them


def _any_block(c, h):
  if c < 1:
    raise ValueError(f"block_size must be >= 1, got {c}")


TARGETS: dict[str, Target] = {
    "xla": Target(xla.lightning_forward, xla.lightning_backward, _any_block),
    "triton": Target(gpu_triton.lightning_forward, gpu_triton.lightning_backward, gpu_triton.check_tiles),
    "tpu": Target(tpu.lightning_forward, tpu.lightning_backward, tpu.check_tiles),
}


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _lightning(q, k, v, rates, state0, runs, target, cfg):
  return TARGETS[target].forward(q, k, v, rates, state0, runs, cfg=cfg)


def _lightning_fwd(q, k, v, rates, state0, runs, target, cfg):
  o, state = TARGETS[target].forward(q, k, v, rates, state0, runs, cfg=cfg)
  return (o, state), (q, k, v, rates, state0, runs, o, state)


def _lightning_bwd(target, cfg, res, cts):
  q, k, v, rates, state0, runs, o, state = res
  d_out, d_state = cts
  dq, dk, dv, d_state0 = TARGETS[target].backward(q, k, v, rates, state0, runs, d_out, d_state, cfg=cfg)
  pos = jnp.arange(1, q.shape[2] + 1, dtype=F32)
  along = lambda a, b: jnp.einsum("bnth,bnth,t->n", a.astype(F32), b.astype(F32), pos)  # noqa: E731
  d_rates = -(along(d_out, o) + cfg.length * jnp.einsum("bnhe,bnhe->n", d_state, state) - along(dv, v))
  return (dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), d_rates.astype(rates.dtype), d_state0,
          None)


_lightning.defvjp(_lightning_fwd, _lightning_bwd)


def lightning_attention(q, k, v, rates, *, target: str, initial_state=None, segment_ids=None, block_size: int = 64,
                        interpret: bool = False):
  """Blocked decayed linear attention with a blockwise backward pass.

  Args:
    q: [B, T, N, H].  k, v: [B, T, K, H] (N a multiple of K).  rates: [N] decay rates s (lambda = exp(-s)).
    target: "xla", "triton", "tpu" or "reference" (naive O(T^2), autodiff).
    initial_state: [B, N, H, H] fp32 state before the first token (default zeros).
    segment_ids: [B, T] document ids of packed rows; the state resets where the id changes.
    block_size: C.  interpret: run a Pallas target in its interpreter.
  Returns:
    (o [B, T, N, H] in q's dtype, final state [B, N, H, H] fp32).
  """
  b, t, n, h = q.shape
  runs = runs_of(segment_ids, b, t)
  state0 = jnp.zeros((b, n, h, v.shape[-1]), F32) if initial_state is None else initial_state.astype(F32)
  rates = rates.astype(F32)
  if target == "reference":
    return naive_linear_attention(q, k, v, rates, runs, state0)
  if target not in TARGETS:
    raise ValueError(f"unknown lightning-attention target {target!r}; known: {sorted(TARGETS) + ['reference']}")
  TARGETS[target].check(block_size, h)
  cfg = LightningConfig(t, int(block_size), bool(interpret))
  qh, kh, vh = (to_heads_major(x, n, cfg.padded) for x in (q, k, v))
  o, state = _lightning(qh, kh, vh, rates, state0, pad_runs(runs, cfg.padded), target, cfg)
  return from_heads_major(o, t), state


__all__ = ["LightningConfig", "TARGETS", "final_state", "lightning_attention", "naive_linear_attention",
           "recurrent_linear_attention", "runs_of"]
