"""Context-parallel attention over a device mesh: `ring`, `allgather_kv` and ByteScale's `hdp`.

All three shard the tokens of q, k, v over mesh axes with `jax.shard_map` and run the blockwise (flash) kernel on
each rank's block; masks read the tokens' true positions and document ids, so any token layout is exact (use the
zigzag layout of `lcjax.sharding.layout` for causal load balance: every rank then skips the same number of blocks).

ring (Liu et al. 2023, Ring Attention): rank r holds its query block Q_r and passes key/value blocks around the
ring with `lax.ppermute`; after step s it holds KV_{r-s}. Each step gives a partial (o_s, lse_s) over one key block,
merged by the online softmax
    lse = log(exp(lse_a) + exp(lse_b)),   o = exp(lse_a - lse) o_a + exp(lse_b - lse) o_b.
The backward recomputes per step with the final (o, lse) (FlashAttention-2 Alg. 2 per key block): dQ_r stays home,
dK/dV accumulators travel with their KV block and arrive back at its owner after the last step.

allgather_kv (Llama 3 context parallelism): all-gather K/V over the axis, attend locally; the backward
reduce-scatters dK/dV.

hdp (ByteScale, Ge et al. 2025, Hybrid Data Parallelism): the ring runs over the data-parallel ranks, but only
inside the groups of ranks that share a long sequence (a `RingLayout` from the HDP scheduler); a rank alone with its
short sequences never communicates, and only the first `window` tokens (the long sequence's slice) travel.

All need an active mesh (`lcjax.sharding.use_sharding`); called without one they raise `ShardingError`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from lcjax.errors import ShapeError, ShardingError
from lcjax.ops.attention import ATTENTION_IMPLS
from lcjax.ops.attention_blockwise import blockwise_backward, blockwise_forward
from lcjax.ops.decode import combine_partials
from lcjax.ops.mask import MaskSpec, token_layout
from lcjax.sharding import axes as ax
from lcjax.sharding.layout import inverse_permutation, layout_permutation
from lcjax.sharding.mesh import CONTEXT_AXIS
from lcjax.sharding.partition import require_active

_F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class RingLayout:
  """Which ranks of an axis exchange key/value blocks.

  Attributes:
    groups: rings, each a tuple of ranks in ring order; a rank in no group (or in a group of one) only attends
      to its own block.
    window: number of leading tokens of each rank's block that travel (None: the whole block).
  """

  groups: tuple[tuple[int, ...], ...]
  window: int | None = None

  def steps(self) -> int:
    """Ring steps after the local one: the largest group size minus one."""
    return max((len(g) for g in self.groups), default=1) - 1

  def perm(self, step: int) -> list[tuple[int, int]]:
    """ppermute pairs of step `step` (>= 1): one hop forward inside every group larger than `step`."""
    return [(g[j], g[(j + 1) % len(g)]) for g in self.groups if len(g) > step for j in range(len(g))]

  def active(self, step: int, size: int, home: bool = False) -> np.ndarray:
    """[size] bool: ranks computing at `step` (or, with home=True, whose dK/dV come home after it)."""
    out = np.zeros(size, bool)
    for g in self.groups:
      if (len(g) == step + 1) if home else (len(g) > step):
        out[list(g)] = True
    return out


def full_ring(size: int) -> RingLayout:
  """One ring over all `size` ranks (plain ring attention)."""
  return RingLayout((tuple(range(size)),))


@dataclasses.dataclass(frozen=True)
class _Static:
  """Everything the custom VJP treats as static."""

  kind: str              # "ring" (ring / hdp) or "allgather"
  layout: RingLayout | None
  axis: tuple[str, ...]  # mesh axes the ring / gather runs over
  pattern: MaskSpec      # static mask fields only (arrays come separately)
  scale: float
  softcap: float | None
  block_q: int
  block_k: int
  mesh: object
  q_spec: P
  kv_spec: P
  tok_spec: P


def _mask(st: _Static, q_pos, q_seg, kv_pos, kv_seg) -> MaskSpec:
  return st.pattern.with_arrays(q_positions=q_pos, q_segment_ids=q_seg, kv_positions=kv_pos, kv_segment_ids=kv_seg)


def _kw(st: _Static) -> dict:
  return dict(scale=st.scale, softcap=st.softcap, block_q=st.block_q, block_k=st.block_k)


def _flag(table: np.ndarray, st: _Static):
  return jnp.asarray(table)[lax.axis_index(st.axis)]


def _merge(out, lse, o_new, lse_new):
  """The online-softmax merge of two partial results (fp32)."""
  merged, merged_lse = combine_partials(jnp.stack([out, o_new], axis=3), jnp.stack([lse, lse_new], axis=3), axis=3)
  return merged, merged_lse


def _ring_forward(st: _Static, q, k, v, q_pos, q_seg, kv_pos, kv_seg):
  """Per-rank forward: (out [b, t, N, H] fp32, lse [b, t, N])."""
  out, lse = blockwise_forward(q, k, v, _mask(st, q_pos, q_seg, kv_pos, kv_seg), **_kw(st))
  out = out.astype(_F32)
  w = st.layout.window or q.shape[1]
  travel = (k[:, :w], v[:, :w], kv_pos[:, :w], kv_seg[:, :w])
  qw_mask = (q_pos[:, :w], q_seg[:, :w])
  size = int(np.prod([st.mesh.shape[a] for a in st.axis]))
  for step in range(1, st.layout.steps() + 1):
    travel = tuple(lax.ppermute(x, st.axis, st.layout.perm(step)) for x in travel)
    kt, vt, pt, sg = travel

    def part(_):
      o, l = blockwise_forward(q[:, :w], kt, vt, _mask(st, *qw_mask, pt, sg), **_kw(st))
      return o.astype(_F32), l

    def skip(_):
      return jnp.zeros(out[:, :w].shape, _F32), jnp.full(lse[:, :w].shape, -jnp.inf, _F32)

    o_s, lse_s = lax.cond(_flag(st.layout.active(step, size), st), part, skip, None)
    o_w, lse_w = _merge(out[:, :w], lse[:, :w], o_s, lse_s)
    out, lse = out.at[:, :w].set(o_w), lse.at[:, :w].set(lse_w)
  return out, lse


def _ring_backward(st: _Static, q, k, v, q_pos, q_seg, kv_pos, kv_seg, out, lse, d_out):
  """Per-rank backward: (dq, dk, dv) for this rank's block."""
  dq, dk, dv = (x.astype(_F32) for x in blockwise_backward(
      q, k, v, _mask(st, q_pos, q_seg, kv_pos, kv_seg), out, lse, d_out, **_kw(st)))
  w = st.layout.window or q.shape[1]
  size = int(np.prod([st.mesh.shape[a] for a in st.axis]))
  travel = (k[:, :w], v[:, :w], kv_pos[:, :w], kv_seg[:, :w])
  d_travel = (jnp.zeros(travel[0].shape, _F32), jnp.zeros(travel[1].shape, _F32))
  q_w = (q[:, :w], q_pos[:, :w], q_seg[:, :w], out[:, :w], lse[:, :w], d_out[:, :w])
  for step in range(1, st.layout.steps() + 1):
    perm = st.layout.perm(step)
    travel = tuple(lax.ppermute(x, st.axis, perm) for x in travel)
    kt, vt, pt, sg = travel

    def part(_):
      qq, qp, qs, oo, ll, do = q_w
      return tuple(x.astype(_F32) for x in blockwise_backward(qq, kt, vt, _mask(st, qp, qs, pt, sg), oo, ll, do,
                                                              **_kw(st)))

    def skip(_):
      return jnp.zeros(q_w[0].shape, _F32), jnp.zeros(kt.shape, _F32), jnp.zeros(vt.shape, _F32)

    dq_s, dk_s, dv_s = lax.cond(_flag(st.layout.active(step, size), st), part, skip, None)
    dq = dq.at[:, :w].add(dq_s)
    # dK/dV of the block we hold travel on with it; after a group's last step they reach the block's owner.
    d_travel = tuple(lax.ppermute(d + ds, st.axis, perm) for d, ds in zip(d_travel, (dk_s, dv_s)))
    home = _flag(st.layout.active(step, size, home=True), st)
    dk = dk.at[:, :w].add(jnp.where(home, d_travel[0], 0.0))
    dv = dv.at[:, :w].add(jnp.where(home, d_travel[1], 0.0))
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)


def _gather(st: _Static, *xs):
  return tuple(lax.all_gather(x, st.axis, axis=1, tiled=True) for x in xs)


def _allgather_forward(st: _Static, q, k, v, q_pos, q_seg, kv_pos, kv_seg):
  k, v, kv_pos, kv_seg = _gather(st, k, v, kv_pos, kv_seg)
  out, lse = blockwise_forward(q, k, v, _mask(st, q_pos, q_seg, kv_pos, kv_seg), **_kw(st))
  return out.astype(_F32), lse


def _allgather_backward(st: _Static, q, k, v, q_pos, q_seg, kv_pos, kv_seg, out, lse, d_out):
  kg, vg, kv_pos, kv_seg = _gather(st, k, v, kv_pos, kv_seg)
  dq, dk, dv = blockwise_backward(q, kg, vg, _mask(st, q_pos, q_seg, kv_pos, kv_seg), out, lse, d_out, **_kw(st))
  dk, dv = (lax.psum_scatter(x.astype(_F32), st.axis, scatter_dimension=1, tiled=True) for x in (dk, dv))
  return dq, dk.astype(k.dtype), dv.astype(v.dtype)


_LOCAL = {"ring": (_ring_forward, _ring_backward), "allgather": (_allgather_forward, _allgather_backward)}


def _shard_map(st: _Static, fn, in_specs, out_specs):
  return jax.shard_map(functools.partial(fn, st), mesh=st.mesh, in_specs=in_specs, out_specs=out_specs,
                       check_vma=False)


def _in_specs(st: _Static):
  return (st.q_spec, st.kv_spec, st.kv_spec) + (st.tok_spec,) * 4


def _lse_spec(st: _Static) -> P:
  return P(*tuple(st.q_spec)[:3])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _sharded(st, q, k, v, q_pos, q_seg, kv_pos, kv_seg):
  fwd = _shard_map(st, _LOCAL[st.kind][0], _in_specs(st), (st.q_spec, _lse_spec(st)))
  return fwd(q, k, v, q_pos, q_seg, kv_pos, kv_seg)[0].astype(q.dtype)


def _sharded_fwd(st, q, k, v, q_pos, q_seg, kv_pos, kv_seg):
  fwd = _shard_map(st, _LOCAL[st.kind][0], _in_specs(st), (st.q_spec, _lse_spec(st)))
  out, lse = fwd(q, k, v, q_pos, q_seg, kv_pos, kv_seg)
  out = out.astype(q.dtype)
  return out, (q, k, v, q_pos, q_seg, kv_pos, kv_seg, out, lse)


def _sharded_bwd(st, res, d_out):
  *inputs, out, lse = res
  bwd = _shard_map(st, _LOCAL[st.kind][1], _in_specs(st) + (st.q_spec, _lse_spec(st), st.q_spec),
                   (st.q_spec, st.kv_spec, st.kv_spec))
  dq, dk, dv = bwd(*inputs, out, lse, d_out)
  return (dq, dk, dv) + (None,) * 4


_sharded.defvjp(_sharded_fwd, _sharded_bwd)


def _spec_axes(spec: P) -> tuple[str, ...]:
  """Mesh axes of the first dim of a one-dim PartitionSpec."""
  first = spec[0] if len(spec) else None
  return () if first is None else (first,) if isinstance(first, str) else tuple(first)


def _axes_or_none(mesh_axes: tuple[str, ...]):
  return None if not mesh_axes else mesh_axes[0] if len(mesh_axes) == 1 else mesh_axes


def _head_axes(ctx, n: int, kv_heads: int) -> tuple[str, ...]:
  """Mesh axes of the head dims: the rules' act_heads axes when they split both N and K evenly."""
  on_n = _spec_axes(ctx.spec((ax.ACT_HEADS,), (n,)))
  return on_n if on_n == _spec_axes(ctx.spec((ax.ACT_KV_HEADS,), (kv_heads,))) else ()


def _run(kind: str, impl: str, q, k, v, mask: MaskSpec, *, scale, softcap, block_q, block_k, seq_axis, ring_axis,
         layout: RingLayout | None, token_layout_name: str):
  """Shared driver: checks shapes, materialises mask arrays, reorders tokens, builds specs, calls `_sharded`."""
  ctx = require_active(f"attention impl {impl!r}")
  b, t, n, h = q.shape
  if k.shape[1] != t:
    raise ShapeError(f"attention impl {impl!r} is self-attention over sharded tokens: q has T={t} but k has "
                     f"S={k.shape[1]}; use it for training/prefill without a cache")
  q_pos, q_seg, kv_pos, kv_seg = token_layout(mask, b, t, t)
  shards = int(np.prod([ctx.mesh.shape[a] for a in seq_axis]))
  if t % shards:
    raise ShapeError(f"attention impl {impl!r}: a sequence of T={t} tokens does not fit the ring of {shards} "
                     f"devices on mesh axis {'/'.join(seq_axis)} evenly; pad T to a multiple of {shards}")
  perm = None
  if token_layout_name != "contiguous":
    perm = layout_permutation(t, shards, token_layout_name)
    q, k, v, q_pos, q_seg, kv_pos, kv_seg = (x[:, perm] for x in (q, k, v, q_pos, q_seg, kv_pos, kv_seg))
  batch = tuple(a for a in _spec_axes(ctx.spec((ax.ACT_BATCH,), (b,))) if a not in seq_axis)
  heads = _head_axes(ctx, n, k.shape[2])
  bs, ss, hs = _axes_or_none(batch), _axes_or_none(seq_axis), _axes_or_none(heads)
  local = t // shards
  st = _Static(kind, layout, ring_axis, dataclasses.replace(mask, q_segment_ids=None, kv_segment_ids=None,
                                                            q_positions=None, kv_positions=None),
               float(scale), None if softcap is None else float(softcap),
               min(block_q, max(local // 2, 1)), min(block_k, max(local // 2, 1)), ctx.mesh,
               P(bs, ss, hs, None), P(bs, ss, hs, None), P(bs, ss))
  out = _sharded(st, q, k, v, q_pos, q_seg, kv_pos, kv_seg)
  return out if perm is None else out[:, inverse_permutation(perm)]


@ATTENTION_IMPLS.register("ring", caps={"grad": True, "needs_mesh": True},
                          doc="ring attention over the `context` mesh axis (shard_map + ppermute), custom VJP")
def ring_attention(q, k, v, mask: MaskSpec, *, scale: float, softcap: float | None = None, block_q: int = 256,
                   block_k: int = 512, layout: str = "contiguous"):
  """Ring attention with tokens sharded over the `context` axis of the active mesh.

  Args:
    q: [B, T, N, H].  k, v: [B, T, K, H] (self-attention: S == T).  mask: any pattern; positions/segments exact.
    scale, softcap, block_q, block_k: as `attention_blockwise` (blocks clipped to half a rank's shard).
    layout: how the given tokens are distributed: "contiguous" (as given: pre-arrange them with
      `lcjax.sharding.layout.to_layout` for balance), or "zigzag"/"striped" to reorder here and back.
  Returns:
    [B, T, N, H].
  Raises:
    ShardingError: no active mesh.  ShapeError: T not divisible over the ring, or S != T.
  """
  ctx = require_active("attention impl 'ring'")
  return _run("ring", "ring", q, k, v, mask, scale=scale, softcap=softcap, block_q=block_q, block_k=block_k,
              seq_axis=(CONTEXT_AXIS,), ring_axis=(CONTEXT_AXIS,), layout=full_ring(ctx.mesh.shape[CONTEXT_AXIS]),
              token_layout_name=layout)


@ATTENTION_IMPLS.register("allgather_kv", caps={"grad": True, "needs_mesh": True},
                          doc="context parallel: all-gather K/V over `context`, local flash; reduce-scatter grads")
def allgather_kv_attention(q, k, v, mask: MaskSpec, *, scale: float, softcap: float | None = None,
                           block_q: int = 256, block_k: int = 512, layout: str = "contiguous"):
  """All-gather-KV context parallelism over the `context` axis of the active mesh (args as `ring_attention`)."""
  return _run("allgather", "allgather_kv", q, k, v, mask, scale=scale, softcap=softcap, block_q=block_q,
              block_k=block_k, seq_axis=(CONTEXT_AXIS,), ring_axis=(CONTEXT_AXIS,), layout=None,
              token_layout_name=layout)


@ATTENTION_IMPLS.register("hdp", caps={"grad": True, "needs_mesh": True},
                          doc="ByteScale HDP: ring only inside the rank groups that share a long sequence")
def hdp_attention(q, k, v, mask: MaskSpec, *, scale: float, softcap: float | None = None, block_q: int = 256,
                  block_k: int = 512):
  """Attention over an HDP-packed batch: one row per data-parallel rank (the mesh axes of `act_batch`).

  The `RingLayout` comes from the active context's `hdp` extra (set by `lcjax.sharding.hdp`); rows of a group hold
  the zigzag slices of one long sequence in their first `window` tokens; segment ids are unique per sequence.
  Args:
    q: [R, C, N, H] (R ranks, C tokens each).  k, v: [R, C, K, H].  mask: with positions and segment ids.
  Returns:
    [R, C, N, H].
  """
  ctx = require_active("attention impl 'hdp'")
  layout = ctx.extra("hdp")
  if layout is None:
    raise ShardingError("attention impl 'hdp' needs the HDP ring layout of the batch: build the step with "
                        "lcjax.sharding.hdp.make_hdp_grad_step / make_hdp_train_step")
  ring_axis = _spec_axes(ctx.spec((ax.ACT_BATCH,), (q.shape[0],)))
  if not ring_axis:
    raise ShardingError(f"attention impl 'hdp': the batch of {q.shape[0]} rows is not sharded over any mesh axis "
                        f"under rule set {ctx.rules.name!r}; HDP needs one row per data-parallel rank")
  return _run("ring", "hdp", q, k, v, mask, scale=scale, softcap=softcap, block_q=block_q, block_k=block_k,
              seq_axis=(), ring_axis=ring_axis, layout=layout, token_layout_name="contiguous")
