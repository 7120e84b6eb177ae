"""Context-parallel lightning attention, LASP-style (Sun et al. 2024, "Linear Attention Sequence Parallelism").

Tokens are split contiguously over the mesh axis `context` (as `fsdp_cp` shards activations). Because linear
attention's whole past is one state, a rank needs only the state entering its block:
  1. local state: each rank r computes S_r = sum_{j in its last document} lambda^(t-j) k_j^T v_j   (O(t H^2));
  2. exclusive scan over ranks: S_in_r = A_(r-1) S_in_(r-1) + S_(r-1), A = lambda^t [no document break], zeroed
     where a document starts exactly at the rank boundary; the row's initial state enters at rank 0;
  3. each rank runs the blocked kernel on its tokens with S_in_r as the initial state (intra + inter products).
LASP passes states around a ring with P2P sends; here step 2 all-gathers the P local states ([P, B, N, H, H], small
next to activations) and scans them on every rank, which is the same recurrence with one collective. The backward
pass is JAX's transpose of the same program (the all-gather becomes a reduce-scatter of state cotangents, i.e. the
reverse scan), and the local kernel keeps its own blockwise custom VJP.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

import pallas_kernels.lightning_attention as la
from lcjax.errors import ShapeError
from lcjax.ops.attention_context import _axes_or_none, _head_axes, _spec_axes
from lcjax.ops.linear_attention import LINEAR_ATTENTION_IMPLS
from lcjax.sharding import axes as ax
from lcjax.sharding.mesh import CONTEXT_AXIS
from lcjax.sharding.partition import require_active


def _incoming(local, through, first, last, state0, rank, size):
  """Exclusive scan of states over ranks: (state entering rank `rank`, state after the last rank)."""
  carry = state0
  entering = []
  for j in range(size):
    if j:
      carry = carry * (first[j] == last[j - 1])[:, None, None, None]
    entering.append(carry)
    carry = through[j][..., None, None] * carry + local[j]
  return jnp.stack(entering)[rank], carry


def _local(size, inner, block_size, options, q, k, v, runs, rates, state0):
  t = q.shape[1]
  local = la.final_state(k, v, rates, runs, num_heads=q.shape[2])
  through = jnp.exp(-rates * t)[None] * (runs[:, -1] == runs[:, 0])[:, None]        # [b, n]
  gather = functools.partial(lax.all_gather, axis_name=CONTEXT_AXIS)
  rank = lax.axis_index(CONTEXT_AXIS)
  s_in, s_out = _incoming(gather(local), gather(through), gather(runs[:, 0]), gather(runs[:, -1]), state0, rank,
                          size)
  out, _ = LINEAR_ATTENTION_IMPLS.get(inner)(q, k, v, rates, initial_state=s_in, segment_ids=runs,
                                             block_size=block_size, **options)
  return out, s_out


@LINEAR_ATTENTION_IMPLS.register("lasp", caps={"grad": True, "needs_mesh": True},
                                 doc="LASP context parallel over the `context` mesh axis: local states, scan, blocks")
def lasp_linear_attention(q, k, v, rates, *, initial_state, segment_ids, block_size=None, inner: str = "xla_blocked",
                          **options):
  """Lightning attention with tokens sharded contiguously over the `context` axis of the active mesh.

  Args:
    q: [B, T, N, H].  k, v: [B, T, K, H].  rates: [N].  initial_state: [B, N, H, H] or None.
    segment_ids: [B, T] or None.  block_size: the local kernel's block.  inner: the local impl (a blocked one).
    **options: passed to the inner impl (e.g. `interpret=`).
  Returns:
    (o [B, T, N, H], final state [B, N, H, H] fp32).
  Raises:
    ShardingError: no active mesh.  ShapeError: T does not split evenly over the axis.
  """
  ctx = require_active("linear attention impl 'lasp'")
  b, t, n, h = q.shape
  size = ctx.mesh.shape[CONTEXT_AXIS]
  if t % size:
    raise ShapeError(f"linear attention impl 'lasp': T={t} tokens do not split over {size} devices of mesh axis "
                     f"{CONTEXT_AXIS!r}; pad T to a multiple of {size}")
  runs = la.runs_of(segment_ids, b, t)          # global document runs, so breaks at rank boundaries are seen
  state0 = jnp.zeros((b, n, h, h), jnp.float32) if initial_state is None else initial_state.astype(jnp.float32)
  batch = tuple(a for a in _spec_axes(ctx.spec((ax.ACT_BATCH,), (b,))) if a != CONTEXT_AXIS)
  bs, hs = _axes_or_none(batch), _axes_or_none(_head_axes(ctx, n, k.shape[2]))
  tok, state = P(bs, CONTEXT_AXIS, hs, None), P(bs, hs, None, None)
  fn = jax.shard_map(functools.partial(_local, size, inner, block_size, options), mesh=ctx.mesh,
                     in_specs=(tok, tok, tok, P(bs, CONTEXT_AXIS), P(hs), state), out_specs=(tok, state),
                     check_vma=False)
  out, final = fn(q, k, v, runs, rates, state0)
  return out.astype(q.dtype), final


