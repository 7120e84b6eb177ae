"""Attention mask specification shared by every attention and decode implementation.

A key at position `s` is visible to a query at position `t` when all of these hold:
  causal:   kv_pos <= q_pos                          (if `causal`)
  window:   q_pos - kv_pos < window  or  kv_pos < sink   (if `window` is set; `sink` keys stay visible)
  segments: q_segment == kv_segment                  (if segment ids are given; document masking)
  blocks:   kv_block == 0  or  q_block - kv_block < local  or  (kv_block + 1) % stride == 0
            (if `sparse_blocks` = (C, local, stride) is set: LongGen's sink + local + strided block pattern,
            blocks of C positions)
Positions are absolute token positions. They default to `arange(S)` for keys and to the bottom-right aligned
`S - T + arange(T)` for queries, so a chunk of T queries attends to S keys ending at its own position.
Rows with no visible key produce a zero output (and zero gradient), never NaN.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lcjax.errors import ShapeError


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MaskSpec:
  """Which keys each query sees. Static fields select the pattern; array fields carry per-token data.

  Attributes:
    causal: queries see keys at positions <= their own.
    window: sliding window size (a query sees the `window` most recent positions, itself included); None: no window.
    sink: number of leading positions (attention sinks) that stay visible outside the window.
    q_segment_ids: [B, T] int document ids of the queries, or None.
    kv_segment_ids: [B, S] int document ids of the keys, or None (required when q_segment_ids is given).
    q_positions: [B, T] int absolute positions of the queries, or None for the default.
    kv_positions: [B, S] int absolute positions of the keys, or None for `arange(S)`.
    sparse_blocks: (C, local, stride) block-sparse pattern (LongGen), or None.
  """

  causal: bool = dataclasses.field(default=True, metadata=dict(static=True))
  window: int | None = dataclasses.field(default=None, metadata=dict(static=True))
  sink: int = dataclasses.field(default=0, metadata=dict(static=True))
  q_segment_ids: jax.Array | None = None
  kv_segment_ids: jax.Array | None = None
  q_positions: jax.Array | None = None
  kv_positions: jax.Array | None = None
  sparse_blocks: tuple[int, int, int] | None = dataclasses.field(default=None, metadata=dict(static=True))

  def __post_init__(self):
    if self.sparse_blocks is not None and (len(self.sparse_blocks) != 3 or min(self.sparse_blocks) < 1):
      raise ShapeError(f"mask sparse_blocks must be (block size, local blocks, stride), all >= 1; got "
                       f"{self.sparse_blocks!r}")
    if self.window is not None and (not isinstance(self.window, int) or self.window < 1):
      raise ShapeError(f"mask window must be a positive int or None, got {self.window!r}")
    if not isinstance(self.sink, int) or self.sink < 0:
      raise ShapeError(f"mask sink must be a non-negative int, got {self.sink!r}")
    if (self.q_segment_ids is None) != (self.kv_segment_ids is None):
      raise ShapeError("mask needs both q_segment_ids and kv_segment_ids, or neither")

  def with_arrays(self, **arrays) -> "MaskSpec":
    """Returns a copy with some array fields replaced."""
    return dataclasses.replace(self, **arrays)


CAUSAL = MaskSpec(causal=True)
FULL = MaskSpec(causal=False)


def validate_mask(mask: MaskSpec, batch: int, q_len: int, kv_len: int) -> None:
  """Raises `ShapeError` if the mask's arrays do not match [B, T] / [B, S]."""
  if not isinstance(mask, MaskSpec):
    raise ShapeError(f"mask must be an lcjax.ops.MaskSpec, got {type(mask).__name__}")
  for name, want in (("q_segment_ids", (batch, q_len)), ("kv_segment_ids", (batch, kv_len)),
                     ("q_positions", (batch, q_len)), ("kv_positions", (batch, kv_len))):
    arr = getattr(mask, name)
    if arr is not None and tuple(arr.shape) != want:
      raise ShapeError(f"mask.{name} has shape {tuple(arr.shape)}; expected [B, {'T' if name[0] == 'q' else 'S'}]"
                       f" = {want}")


def token_layout(mask: MaskSpec, batch: int, q_len: int, kv_len: int):
  """Materialises per-token positions and segment ids for queries and keys.

  Returns:
    (q_pos [B, T], q_seg [B, T], kv_pos [B, S], kv_seg [B, S]) int32 arrays; segments are all zero when absent.
  """
  q_pos = mask.q_positions
  if q_pos is None:
    q_pos = jnp.broadcast_to(kv_len - q_len + jnp.arange(q_len, dtype=jnp.int32), (batch, q_len))
  kv_pos = mask.kv_positions
  if kv_pos is None:
    kv_pos = jnp.broadcast_to(jnp.arange(kv_len, dtype=jnp.int32), (batch, kv_len))
  if mask.q_segment_ids is None:
    q_seg = jnp.zeros((batch, q_len), jnp.int32)
    kv_seg = jnp.zeros((batch, kv_len), jnp.int32)
  else:
    q_seg, kv_seg = mask.q_segment_ids.astype(jnp.int32), mask.kv_segment_ids.astype(jnp.int32)
  return q_pos.astype(jnp.int32), q_seg, kv_pos.astype(jnp.int32), kv_seg


def visible(mask: MaskSpec, q_pos, q_seg, kv_pos, kv_seg):
  """Elementwise visibility of keys to queries.

  Args:
    mask: the pattern (only its static fields are read here).
    q_pos, q_seg: [B, T] (or any shape broadcastable against kv after the trailing axes added below).
    kv_pos, kv_seg: [B, S].
  Returns:
    [B, T, S] bool.
  """
  qp, qs = q_pos[..., :, None], q_seg[..., :, None]
  kp, ks = kv_pos[..., None, :], kv_seg[..., None, :]
  ok = qs == ks
  if mask.causal:
    ok &= kp <= qp
  if mask.window is not None:
    in_window = qp - kp < mask.window
    if mask.sink:
      in_window |= kp < mask.sink
    ok &= in_window
  if mask.sparse_blocks is not None:
    c, local, stride = mask.sparse_blocks
    qb, kb = qp // c, kp // c
    ok &= (kb == 0) | (qb - kb < local) | ((kb + 1) % stride == 0)
  return ok
