"""GGUF tensors kept quantised: ggml blocks re-laid as a `QArray`, without dequantising a value.

A GGUF weight is stored like HF's [out, in] (numpy shape [N, K]), each row a run of 32-value blocks along K:
  Q8_0 block: d:f16, qs[32]:i8          Q4_0 block: d:f16, qs[16]:u8          Q4_1 block: d:f16, m:f16, qs[16]:u8
so the QArray (K along rows) is a byte transpose: values[32 b + j, n] = qs[n, b, j] (8-bit), packed[16 b + j, n] =
qs[n, b, j] (4-bit: ggml's nibble order is the QArray's), scale[b, n] = d[n, b], mins[b, n] = m[n, b].
"""

from __future__ import annotations

import numpy as np

from lcjax.errors import CheckpointError
from lcjax.quant.formats import BLOCK, QArray

# ggml type -> (lcjax format, bytes per block, byte offset of m or None, byte offset of qs)
GGUF_FORMATS = {"Q8_0": ("q8_0", 34, None, 2), "Q4_0": ("q4_0", 18, None, 2), "Q4_1": ("q4_1", 20, 2, 4)}


def _f16(blocks: np.ndarray, at: int) -> np.ndarray:
  """[N, B, bytes] -> [B, N] f16 read at byte `at` of each block."""
  return np.ascontiguousarray(blocks[:, :, at:at + 2]).view(np.float16)[..., 0].T.copy()


def qarray_from_gguf(raw: np.ndarray, type_name: str, shape: tuple[int, int], where: str = "") -> QArray:
  """A GGUF block-quantised tensor of numpy shape [N, K] as a QArray of the matrix [K, N] (numpy leaves).

  Args:
    raw: the tensor's bytes.  type_name: `Q8_0`, `Q4_0` or `Q4_1`.  shape: (N, K) as numpy reads the tensor.
  Returns:
    QArray with shape (K, N), group 32, axes (None, None) (callers set shape/axes for the parameter).
  Raises:
    CheckpointError: another type, a K that is not whole blocks, or a byte count that does not fit.
  """
  if type_name not in GGUF_FORMATS:
    raise CheckpointError(f"{where}: GGUF type {type_name} cannot be kept quantised; accepted: "
                          f"{', '.join(GGUF_FORMATS)} (or load with weights='fp32' to dequantise)")
  fmt, block_bytes, m_at, qs_at = GGUF_FORMATS[type_name]
  if len(shape) != 2 or shape[1] % BLOCK:
    raise CheckpointError(f"{where}: {type_name} tensor of shape {tuple(shape)} is not a matrix of {BLOCK}-blocks")
  n, k = shape
  data = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
  if data.size != n * (k // BLOCK) * block_bytes:
    raise CheckpointError(f"{where}: {type_name} tensor of shape {tuple(shape)} needs "
                          f"{n * (k // BLOCK) * block_bytes} bytes, file has {data.size}")
  blocks = data.reshape(n, k // BLOCK, block_bytes)
  qs = blocks[:, :, qs_at:]
  values = qs.reshape(n, -1).T.copy()
  if fmt == "q8_0":
    values = values.view(np.int8)
  mins = None if m_at is None else _f16(blocks, m_at)
  return QArray(values, _f16(blocks, 0), mins, fmt, BLOCK, (k, n), (None, None))


def take_columns(qa: QArray, index: np.ndarray) -> QArray:
  """The QArray with its N columns reordered by `index` (scales and mins follow)."""
  pick = lambda x: None if x is None else np.asarray(x)[:, index]  # noqa: E731
  return QArray(pick(qa.values), pick(qa.scale), pick(qa.mins), qa.fmt, qa.group, qa.shape, qa.axes,
                qa.transposed)
