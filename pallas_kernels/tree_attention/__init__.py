"""Masked tree attention: the speculative-tree half of LongSpec's hybrid tree attention (arXiv 2502.17421).

Queries are the nodes of a draft tree, keys the same nodes; node i sees node j iff j is i or an ancestor of i
(`tree_mask[b, i, j]`). The result carries its log-sum-exp so the caller merges it with attention over the cached
prefix (`lcjax.ops.tree_attention`). One program per (batch, kv head) holds the whole tree in one tile: the G query
heads of the kv head are packed as rows g * T + t (the decode kernels' GQA packing).

  tree_attention(q [B, T, N, H], k, v [B, Tk, K, H], tree_mask [B, T, Tk], target=...) -> (out, lse [B, T, N])

Targets: "reference" (jnp), "triton" (rows/keys padded to powers of two >= 16), "tpu" (Mosaic TPU, rows padded to
a multiple of 8, keys to 128 lanes). Both kernels run in the Pallas interpreter with interpret=True.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from pallas_kernels.tile_math import next_power_of_2, round_up
from pallas_kernels.tree_attention.kernel import tree_kernel
from pallas_kernels.tree_attention.reference import tree_reference

_ROWS = {"triton": lambda r: max(16, next_power_of_2(r)), "tpu": lambda r: round_up(r, 8)}
_KEYS = {"triton": lambda c: max(16, next_power_of_2(c)), "tpu": lambda c: round_up(c, 128)}


def pack(q, k, v, tree_mask, rows: int, keys: int):
  """Heads-packed, padded operands: q [B, K, R, H], k, v [B, K, C, H], mask [B, R, C] int32 (0 on padding)."""
  b, t, n, h = q.shape
  tk, kh = k.shape[1], k.shape[2]
  g = n // kh
  qp = jnp.transpose(q.reshape(b, t, kh, g, h), (0, 2, 3, 1, 4)).reshape(b, kh, g * t, h)
  qp = jnp.pad(qp, ((0, 0), (0, 0), (0, rows - g * t), (0, 0)))
  kp, vp = (jnp.pad(jnp.swapaxes(x, 1, 2), ((0, 0), (0, 0), (0, keys - tk), (0, 0))) for x in (k, v))
  m = jnp.tile(tree_mask.astype(jnp.int32), (1, g, 1))
  m = jnp.pad(m, ((0, 0), (0, rows - g * t), (0, keys - tk)))
  return qp, kp, vp, m


def unpack(out, lse, t: int, n: int, dtype):
  """[B, K, R, H], [B, K, R, 1] packed rows -> out [B, T, N, H] in dtype, lse [B, T, N] fp32."""
  b, kh, _, h = out.shape
  g = n // kh
  out = out[:, :, :g * t].reshape(b, kh, g, t, h).transpose(0, 3, 1, 2, 4).reshape(b, t, n, h)
  lse = lse[:, :, :g * t, 0].reshape(b, kh, g, t).transpose(0, 3, 1, 2).reshape(b, t, n)
  return out.astype(dtype), lse


@functools.partial(jax.jit, static_argnames=("target", "scale", "softcap", "interpret"))
def tree_attention(q, k, v, tree_mask, *, target: str, scale: float | None = None, softcap: float | None = None,
                   interpret: bool = False):
  """Masked attention of tree nodes over tree nodes, with its log-sum-exp.

  Args:
    q: [B, T, N, H].  k, v: [B, Tk, K, H] token-major tree keys/values.  tree_mask: [B, T, Tk] bool.
    target: "reference", "triton" or "tpu".  scale: default 1/sqrt(H).  softcap: logit cap.
    interpret: run the kernel in the Pallas interpreter.
  Returns:
    (out [B, T, N, H] in q's dtype, lse [B, T, N] fp32; -inf and 0 for a row that sees no node).
  """
  scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
  if target == "reference" or k.shape[1] == 0:
    return tree_reference(q, k, v, tree_mask, scale=scale, softcap=softcap)
  b, t, n, _ = q.shape
  if target not in _ROWS:
    raise ValueError(f"tree_attention target must be 'reference', 'triton' or 'tpu', got {target!r}")
  rows = _ROWS[target]((n // k.shape[2]) * t)
  keys = _KEYS[target](k.shape[1])
  qp, kp, vp, m = pack(q, k, v, tree_mask, rows, keys)
  out, lse = tree_kernel(qp, kp, vp, m, target=target, scale=scale, softcap=softcap, interpret=interpret)
  return unpack(out, lse, t, n, q.dtype)


__all__ = ["pack", "tree_attention", "tree_reference", "unpack"]
