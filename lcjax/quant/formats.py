"""Quantised weight formats: a `QArray` pytree (integer values + scales [+ mins]) and round-to-nearest quantisers.

A quantised weight is a matrix W [K, N] (x @ W: K is contracted) cut into groups of `group` rows along K; each
(group, column) has a scale d (and, for `q4_1`, a min m):

| format | bits | value of row k, column n (g = k // group)         | group     | scales | GGUF twin |
|--------|------|---------------------------------------------------|-----------|--------|-----------|
| int8   | 8    | d[g, n] * q[k, n],  q in [-127, 127]              | K (per-channel) | f32 | -       |
| q8_0   | 8    | d[g, n] * q[k, n],  q in [-128, 127]              | 32        | f16    | Q8_0      |
| q4_0   | 4    | d[g, n] * (q[k, n] - 8),  q in [0, 15]            | 32        | f16    | Q4_0      |
| q4_1   | 4    | d[g, n] * q[k, n] + m[g, n],  q in [0, 15]        | 32        | f16    | Q4_1      |

4-bit values are packed two per byte in 32-row blocks exactly as ggml packs a block (so GGUF tensors load by
re-laying bytes, without dequantising): packed[16 b + j, n] = q[32 b + j, n] | q[32 b + 16 + j, n] << 4.
Quantisers follow ggml's reference (`quantize_row_*_ref`): q8_0 d = amax / 127, q = round-half-away(x / d);
q4_0 d = (signed value of largest |x|) / -8, q = min(15, trunc(x / d + 8.5)); q4_1 d = (max - min) / 15, m = min,
q = min(15, trunc((x - min) / d + 0.5)). The inverse scale is taken from the f32 d before d is rounded to f16, as
ggml does. Dequantisation computes in f32 in ggml's order (d * q, then + m), so it equals gguf's bit for bit.

`QArray.shape` is the float parameter's shape (e.g. wq [D, N, H] is stored as the matrix [D, N * H]);
`transposed=True` marks a table stored as its transpose (the embedding [V, D] is kept as [D, V], quantised along
D, so the tied output head is an ordinary quantised matmul). `axes` are the matrix's two logical axis names; the
scales and mins carry the same names (their group axis is a coarsened K), so sharding rules cover every leaf.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from lcjax.errors import ShapeError
from lcjax.registry import Registry

BLOCK = 32  # rows per 4-bit packing block (ggml's QK)


@dataclasses.dataclass(frozen=True)
class QFormat:
  """A quantisation format: bits, whether it has a per-group min, the 4-bit offset, scale dtype, default group."""

  name: str
  bits: int
  has_min: bool
  offset: int
  scale_dtype: str
  default_group: int | None  # None: one group over all of K (per-channel)

  def bits_per_weight(self, group: int) -> float:
    """Stored bits per weight, scales and mins included."""
    extra = (2 if self.has_min else 1) * jnp.dtype(self.scale_dtype).itemsize * 8
    return self.bits + extra / group


QUANT_FORMATS: Registry[QFormat] = Registry("quantisation format")
for _f in (QFormat("int8", 8, False, 0, "float32", None), QFormat("q8_0", 8, False, 0, "float16", 32),
           QFormat("q4_0", 4, False, 8, "float16", 32), QFormat("q4_1", 4, True, 0, "float16", 32)):
  QUANT_FORMATS.register(_f.name, _f, doc=f"{_f.bits}-bit, group {_f.default_group or 'K'}, "
                         f"{'scale+min' if _f.has_min else 'scale'} ({_f.scale_dtype})")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class QArray:
  """A quantised matrix [K, N] standing in for a float parameter of shape `shape`.

  Leaves: values int8 [K, N] (8-bit) or packed uint8 [K / 2, N] (4-bit); scale [K / group, N]; mins [K / group, N]
  (q4_1) or None. Static: fmt, group, shape (the float parameter's), axes (two logical names), transposed.
  """

  values: jax.Array
  scale: jax.Array
  mins: jax.Array | None
  fmt: str = dataclasses.field(metadata=dict(static=True))
  group: int = dataclasses.field(metadata=dict(static=True))
  shape: tuple = dataclasses.field(metadata=dict(static=True))
  axes: tuple = dataclasses.field(metadata=dict(static=True))
  transposed: bool = dataclasses.field(default=False, metadata=dict(static=True))

  @property
  def format(self) -> QFormat:
    return QUANT_FORMATS.get(self.fmt)

  @property
  def matrix_shape(self) -> tuple[int, int]:
    """(K, N) of the stored matrix."""
    k = self.values.shape[0] * (2 if self.format.bits == 4 else 1)
    return k, self.values.shape[1]

  @property
  def dtype(self):  # the dtype a dequantised value has
    return jnp.dtype(jnp.float32)

  @property
  def ndim(self) -> int:
    return len(self.shape)

  @property
  def nbytes(self) -> int:
    """Bytes stored (values, scales, mins)."""
    return sum(int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in (self.values, self.scale, self.mins)
               if x is not None)

  def dequantize(self, dtype=jnp.float32) -> jax.Array:
    """The float parameter (shape `shape`), computed in f32 in ggml's order, then cast to `dtype`."""
    m = dequantize_matrix(self)
    return (m.T if self.transposed else m).reshape(self.shape).astype(dtype)

  def __getitem__(self, key):
    """`param[...]` on a quantised parameter: the dequantised array (the generic path any layer code can take)."""
    return self.dequantize()[key]

  def logical_axes(self) -> "QArray":
    """A QArray-shaped tree whose leaves are the logical axis tuples (for sharding rules)."""
    return dataclasses.replace(self, values=self.axes, scale=self.axes,
                               mins=None if self.mins is None else self.axes)


def is_qarray(x) -> bool:
  return isinstance(x, QArray)


def check_group(fmt: QFormat, k: int, group: int | None) -> int:
  """The group size to use for K rows, or `ShapeError` when K is not a whole number of groups."""
  group = k if (group or fmt.default_group) is None else int(group or fmt.default_group)
  if group <= 0 or k % group:
    raise ShapeError(f"format {fmt.name}: K={k} rows are not a whole number of groups of {group}; accepted: a group "
                     f"size that divides K")
  if fmt.bits == 4 and group % BLOCK:
    raise ShapeError(f"format {fmt.name}: group size {group} must be a multiple of {BLOCK} (4-bit packing blocks)")
  return group


def pack_nibbles(q: jax.Array) -> jax.Array:
  """[K, N] values 0..15 -> [K / 2, N] uint8 in ggml's block order (low nibble row j, high nibble row j + 16)."""
  k, n = q.shape
  blocks = q.astype(jnp.uint8).reshape(k // BLOCK, 2, BLOCK // 2, n)
  return (blocks[:, 0] | (blocks[:, 1] << 4)).reshape(k // 2, n)


def unpack_nibbles(packed: jax.Array) -> jax.Array:
  """[K / 2, N] uint8 -> [K, N] uint8 values 0..15 (inverse of `pack_nibbles`)."""
  half, n = packed.shape
  p = packed.reshape(half // (BLOCK // 2), 1, BLOCK // 2, n)
  return jnp.concatenate([p & 0x0F, p >> 4], axis=1).reshape(2 * half, n)


def integer_values(qa: QArray) -> jax.Array:
  """The stored integers [K, N] as f32, with q4_0's offset removed (q - 8)."""
  fmt = qa.format
  if fmt.bits == 4:
    return unpack_nibbles(qa.values).astype(jnp.int8).astype(jnp.float32) - float(fmt.offset)
  return qa.values.astype(jnp.float32)


def dequantize_matrix(qa: QArray) -> jax.Array:
  """The stored matrix [K, N] in f32: d * q (+ m), d and m broadcast over each group's rows."""
  k, n = qa.matrix_shape
  q = integer_values(qa).reshape(k // qa.group, qa.group, n)
  out = qa.scale.astype(jnp.float32)[:, None, :] * q
  if qa.mins is not None:
    out = out + qa.mins.astype(jnp.float32)[:, None, :]
  return out.reshape(k, n)


def _round_half_away(x):
  return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


def quantize_matrix(w: jax.Array, fmt_name: str, *, group: int | None = None, shape: tuple | None = None,
                    axes: tuple = (None, None), transposed: bool = False) -> QArray:
  """Round-to-nearest quantisation of a float matrix w [K, N] along K (ggml's reference rules, see module doc).

  Args:
    w: [K, N] float.  fmt_name: a `QUANT_FORMATS` name.  group: rows per scale (default: the format's; int8: K).
    shape: the float parameter's shape (default (K, N)).  axes: logical names of K and N.  transposed: see QArray.
  Raises:
    ShapeError: w not 2-D, or K not a whole number of groups.
  """
  fmt = QUANT_FORMATS.get(fmt_name)
  if np.ndim(w) != 2:
    raise ShapeError(f"quantize_matrix takes a [K, N] matrix, got shape {tuple(np.shape(w))}")
  k, n = np.shape(w)
  group = check_group(fmt, k, group)
  values, d, mins = _quantize(jnp.asarray(w, jnp.float32), fmt, group)
  return QArray(values, d, mins, fmt.name, group, tuple(shape or (k, n)), tuple(axes), transposed)


@functools.partial(jax.jit, static_argnames=("fmt", "group"))
def _quantize(w: jax.Array, fmt: QFormat, group: int):
  """(values, scale, mins) of w [K, N] (see `quantize_matrix`)."""
  k, n = w.shape
  x = w.reshape(k // group, group, n)
  mins = None
  if fmt.name in ("int8", "q8_0"):
    d = jnp.max(jnp.abs(x), axis=1) / 127.0
    inv = jnp.where(d == 0, 0.0, 1.0 / jnp.where(d == 0, 1.0, d))
    q = _round_half_away(x * inv[:, None, :]).astype(jnp.int8)
  elif fmt.name == "q4_0":
    idx = jnp.argmax(jnp.abs(x), axis=1)
    signed_max = jnp.take_along_axis(x, idx[:, None, :], axis=1)[:, 0]
    d = signed_max / -8.0
    inv = jnp.where(d == 0, 0.0, 1.0 / jnp.where(d == 0, 1.0, d))
    q = jnp.minimum(15.0, jnp.trunc(x * inv[:, None, :] + 8.5))
  else:  # q4_1
    lo, hi = jnp.min(x, axis=1), jnp.max(x, axis=1)
    d = (hi - lo) / 15.0
    inv = jnp.where(d == 0, 0.0, 1.0 / jnp.where(d == 0, 1.0, d))
    q = jnp.minimum(15.0, jnp.trunc((x - lo[:, None, :]) * inv[:, None, :] + 0.5))
    mins = lo.astype(fmt.scale_dtype)
  q = q.reshape(k, n)
  values = pack_nibbles(q) if fmt.bits == 4 else q.astype(jnp.int8)
  return values, d.astype(fmt.scale_dtype), mins


def as_matrix(w: jax.Array, contracted: int) -> jax.Array:
  """A float parameter as the [K, N] matrix its first `contracted` dims are contracted over."""
  return w.reshape(math.prod(w.shape[:contracted]), -1)
