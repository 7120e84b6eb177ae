"""The layers' one hook for quantised weights: `dense` is `jnp.einsum` for a float weight and
`ops.quantized_matmul` for a `QArray`, so a model runs unchanged with float or quantised params.

Layer code that indexes a quantised parameter directly (`w[...]`) still works: `QArray.__getitem__` dequantises
(the generic, slower path for any architecture); `dense` and `embed_lookup` are the fast paths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lcjax.quant.formats import QArray, dequantize_matrix


def weight_value(w):
  """A parameter's value (an array or a QArray) from an `nnx.Variable` or the value itself."""
  return w.get_value() if isinstance(w, nnx.Variable) else w


def _out_dims(qa: QArray) -> tuple:
  """The float parameter's output dims: what is left of `shape` after the dims whose product is K."""
  if qa.transposed:
    return (qa.matrix_shape[1],)
  k, size = qa.matrix_shape[0], 1
  for i, d in enumerate(qa.shape):
    if size == k:
      return tuple(qa.shape[i:])
    size *= d
  return (qa.matrix_shape[1],)


def dense(eq: str, x: jax.Array, w, *, shape: tuple | None = None, **einsum_kwargs) -> jax.Array:
  """`jnp.einsum(eq, x, w.astype(x.dtype).reshape(shape))`, or `ops.quantized_matmul` when w is quantised.

  A quantised weight contracts x's last dim with its matrix's K (its layout is chosen at quantisation for the way
  the layer calls it, see `lcjax.quant.params.CONTRACTED`); the result takes the parameter's output dims.
  `preferred_element_type` sets the result dtype on both paths.
  """
  from lcjax.ops.quantized_matmul import quantized_matmul

  value = weight_value(w)
  if isinstance(value, QArray):
    y = quantized_matmul(x, value, out_dtype=einsum_kwargs.get("preferred_element_type"))
    return y.reshape(*x.shape[:-1], *_out_dims(value))
  value = value.astype(x.dtype)
  return jnp.einsum(eq, x, value if shape is None else value.reshape(shape), **einsum_kwargs)


def embed_lookup(table, tokens: jax.Array) -> jax.Array:
  """`take(table, tokens, axis=0)` for a [V, D] table; a quantised table (stored [D, V]) dequantises only the
  gathered columns. Returns [*tokens.shape, D] (f32 for a quantised table)."""
  value = weight_value(table)
  if not isinstance(value, QArray):
    return jnp.take(value, tokens, axis=0)
  ids = tokens.reshape(-1)
  pick = lambda a: None if a is None else jnp.take(a, ids, axis=1)  # noqa: E731
  cols = QArray(pick(value.values), pick(value.scale), pick(value.mins), value.fmt, value.group,
                (value.matrix_shape[0], ids.shape[0]), value.axes)
  return dequantize_matrix(cols).T.reshape(*tokens.shape, -1)
