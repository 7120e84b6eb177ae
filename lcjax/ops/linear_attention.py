"""`lcjax.ops.linear_attention`: decayed causal linear attention (MiniMax lightning attention), many impls.

  S_t = lambda S_(t-1) + k_t^T v_t  (fp32 state [H, H] per query head),  o_t = q_t S_t,  lambda = exp(-s) per head
No softmax, no 1/sqrt(H) unless a `scale` is given, no positional encoding. Impls register in
`LINEAR_ATTENTION_IMPLS`; `impl="auto"` resolves through `AUTO_TABLE` like `ops.attention`:

| impl              | platforms | how                                                                 | backward           |
|-------------------|-----------|---------------------------------------------------------------------|--------------------|
| reference         | all       | naive [T, T] decay mask (oracle)                                    | autodiff           |
| recurrent         | all       | `lax.scan` over tokens (MiniMax's decode path)                      | autodiff           |
| xla_blocked       | all       | lightning: intra-block left product + inter-block state, scan blocks| custom VJP, blocked|
| pallas_triton     | gpu       | Pallas Triton kernel, one program per (b, n) walking the blocks     | dQ, dK/dV kernels  |
| pallas_tpu        | tpu       | Mosaic TPU, grid (b, n, block) with the state in VMEM scratch       | dQ, dK/dV kernels  |
| lasp              | all       | context parallel over the mesh axis `context` (see linear_attention_context) | custom VJP |

| platform | auto order                 |
|----------|----------------------------|
| cpu      | xla_blocked                |
| gpu      | pallas_triton, xla_blocked |
| tpu      | pallas_tpu, xla_blocked    |
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

import pallas_kernels.lightning_attention as la
from lcjax.errors import ShapeError
from lcjax.ops.attention import check_qkv, resolve_impl
from lcjax.registry import Registry

LINEAR_ATTENTION_IMPLS: Registry[Callable] = Registry("linear attention impl")
AUTO_TABLE: dict[str, tuple[str, ...]] = {
    "cpu": ("xla_blocked",),
    "gpu": ("pallas_triton", "xla_blocked"),
    "tpu": ("pallas_tpu", "xla_blocked"),
}
DEFAULT_BLOCK = 64


def _reference(q, k, v, rates, *, initial_state, segment_ids, block_size=None):
  """Naive masked O(T^2) form: q [B, T, N, H], k, v [B, T, K, H] -> (o, state)."""
  return la.naive_linear_attention(q, k, v, rates, la.runs_of(segment_ids, q.shape[0], q.shape[1]), initial_state)


def _recurrent(q, k, v, rates, *, initial_state, segment_ids, block_size=None):
  """Token-by-token recurrence (`lax.scan`), the decode step: q [B, T, N, H] -> (o, state)."""
  return la.recurrent_linear_attention(q, k, v, rates, la.runs_of(segment_ids, q.shape[0], q.shape[1]),
                                       initial_state)


def _blocked(target: str):
  def impl(q, k, v, rates, *, initial_state, segment_ids, block_size=None, interpret: bool = False):
    """Lightning attention over blocks of `block_size` tokens: q [B, T, N, H] -> (o, state)."""
    block_size = block_size or DEFAULT_BLOCK
    if target == "xla":
      block_size = min(block_size, q.shape[1])  # a short chunk is one block, not one padded to C
    try:
      la.TARGETS[target].check(block_size, q.shape[-1])
    except ValueError as e:
      raise ShapeError(str(e)) from None
    return la.lightning_attention(q, k, v, rates, target=target, initial_state=initial_state,
                                  segment_ids=segment_ids, block_size=block_size,
                                  interpret=interpret)

  impl.__name__ = f"linear_attention_{target}"
  return impl


LINEAR_ATTENTION_IMPLS.register("reference", _reference, caps={"grad": True})
LINEAR_ATTENTION_IMPLS.register("recurrent", _recurrent, caps={"grad": True})
LINEAR_ATTENTION_IMPLS.register("xla_blocked", _blocked("xla"), caps={"grad": True},
                                doc="lightning attention: intra-block mask + inter-block fp32 state, custom VJP")
_PALLAS_CAPS = {"grad": True, "interpretable": True}
LINEAR_ATTENTION_IMPLS.register("pallas_triton", _blocked("triton"), platforms=("gpu",), caps=_PALLAS_CAPS,
                                doc="Pallas Triton lightning kernel fwd + dQ/dKV kernels (C, H powers of two >= 16)")
LINEAR_ATTENTION_IMPLS.register("pallas_tpu", _blocked("tpu"), platforms=("tpu",), caps=_PALLAS_CAPS,
                                doc="Pallas Mosaic TPU lightning kernel fwd + dQ/dKV kernels, state in VMEM")


def check_linear_inputs(q, k, v, decay, initial_state, segment_ids) -> None:
  """Raises `ShapeError` naming the bad argument unless the shapes fit `linear_attention`."""
  check_qkv(q, k, v)
  b, t, n, h = q.shape
  if k.shape[1] != t:
    raise ShapeError(f"linear attention is self-attention: q has T={t} tokens, k and v have {k.shape[1]}")
  if jnp.shape(decay) != (n,):
    raise ShapeError(f"decay must be [N]=({n},) per-head rates, got shape {jnp.shape(decay)}")
  if initial_state is not None and initial_state.shape != (b, n, h, h):
    raise ShapeError(f"initial_state must be [B, N, H, H]={(b, n, h, h)}, got {initial_state.shape}")
  if segment_ids is not None and segment_ids.shape != (b, t):
    raise ShapeError(f"segment_ids must be [B, T]={(b, t)}, got {segment_ids.shape}")


def linear_attention(q: jax.Array, k: jax.Array, v: jax.Array, decay: jax.Array, *, initial_state=None,
                     return_state: bool = False, impl: str = "auto", block_size: int | None = None,
                     segment_ids=None, scale: float = 1.0, **options):
  """Decayed causal linear attention.

  Args:
    q: [B, T, N, H] queries.  k, v: [B, T, K, H] keys and values (query head n uses kv head n // (N / K)).
    decay: [N] rates s >= 0 (lambda = exp(-s)), from `lcjax.ops.linear_decay` (traced: may be learnable).
    initial_state: [B, N, H, H] fp32 state before the first token (chunked prefill, decode, context parallel).
    return_state: also return the final state [B, N, H, H] fp32.
    impl: "auto" or a name in `LINEAR_ATTENTION_IMPLS`.  block_size: C for the blocked impls (default 64).
    segment_ids: [B, T] document ids of packed rows; the state resets where the id changes (an initial state
      belongs to the row's first document).
    scale: multiplies q (MiniMax: 1; TransNormer/fla: 1/sqrt(H)).
    **options: impl-specific static options (`interpret=` for Pallas impls, `axis=` for `lasp`).
  Returns:
    o [B, T, N, H] in q's dtype, or (o, state) with `return_state`.
  """
  check_linear_inputs(q, k, v, decay, initial_state, segment_ids)
  name = resolve_impl(LINEAR_ATTENTION_IMPLS, AUTO_TABLE, impl, options)
  if scale != 1.0:
    q = q * jnp.asarray(scale, q.dtype)
  out, state = LINEAR_ATTENTION_IMPLS.get(name)(q, k, v, jnp.asarray(decay, jnp.float32),
                                                initial_state=initial_state, segment_ids=segment_ids,
                                                block_size=block_size, **options)
  return (out, state) if return_state else out
