"""Dequantisation of GGUF (ggml) tensor types, in numpy.

Each quantised type stores blocks of 32 values (QK = 32). Layouts (little-endian), value x_j of a block:
  Q4_0: d:f16, qs[16]:u8                 x_j = d * (q_j - 8),  q_j = low nibble of qs[j] (j < 16) or high nibble of
                                         qs[j - 16] (j >= 16)
  Q4_1: d:f16, m:f16, qs[16]:u8          x_j = d * q_j + m
  Q5_0: d:f16, qh:u32, qs[16]:u8         x_j = d * ((q_j | h_j << 4) - 16), h_j = bit j of qh
  Q5_1: d:f16, m:f16, qh:u32, qs[16]:u8  x_j = d * (q_j | h_j << 4) + m
  Q8_0: d:f16, qs[32]:i8                 x_j = d * qs[j]
F32, F16 and BF16 are stored plainly.
"""

from __future__ import annotations

import numpy as np

from lcjax.errors import CheckpointError

QK = 32


def _f16(raw: np.ndarray, start: int) -> np.ndarray:
  return raw[:, start:start + 2].copy().view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
  """[n, 16] u8 -> [n, 32] values: low nibbles then high nibbles."""
  return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)


def _high_bits(qh_bytes: np.ndarray) -> np.ndarray:
  """[n, 4] u8 (a little-endian u32) -> [n, 32] bit j of the word."""
  word = qh_bytes.copy().view("<u4")  # [n, 1]
  return ((word >> np.arange(QK, dtype=np.uint32)) & 1).astype(np.float32)


def _q4_0(raw):
  return _f16(raw, 0) * (_nibbles(raw[:, 2:18]) - 8.0)


def _q4_1(raw):
  return _f16(raw, 0) * _nibbles(raw[:, 4:20]) + _f16(raw, 2)


def _q5_0(raw):
  q = _nibbles(raw[:, 6:22]) + 16.0 * _high_bits(raw[:, 2:6])
  return _f16(raw, 0) * (q - 16.0)


def _q5_1(raw):
  q = _nibbles(raw[:, 8:24]) + 16.0 * _high_bits(raw[:, 4:8])
  return _f16(raw, 0) * q + _f16(raw, 2)


def _q8_0(raw):
  return _f16(raw, 0) * raw[:, 2:34].copy().view(np.int8).astype(np.float32)


# type name -> (bytes per block of 32, block dequantiser)
_BLOCK_TYPES = {"Q4_0": (18, _q4_0), "Q4_1": (20, _q4_1), "Q5_0": (22, _q5_0), "Q5_1": (24, _q5_1),
                "Q8_0": (34, _q8_0)}
_PLAIN_TYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}
SUPPORTED_TYPES = tuple(_PLAIN_TYPES) + tuple(_BLOCK_TYPES)


def dequantize(raw: np.ndarray, type_name: str, shape: tuple[int, ...], where: str = "") -> np.ndarray:
  """Turns a GGUF tensor's stored bytes into float32 values.

  Args:
    raw: the tensor's data as stored (any shape; its bytes are read in order).
    type_name: ggml type name (`F32`, `F16`, `BF16`, `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0`).
    shape: numpy (row-major) shape of the result.
    where: tensor/file description for error messages.
  Returns:
    float32 array of `shape`.
  Raises:
    CheckpointError: unsupported type or a byte count that does not match the shape.
  """
  n = int(np.prod(shape))
  data = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
  if type_name in _PLAIN_TYPES:
    if type_name == "BF16":
      want = 2 * n
      values = None if data.size != want else (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
      dt = np.dtype(_PLAIN_TYPES[type_name])
      want = dt.itemsize * n
      values = None if data.size != want else data.view(dt).astype(np.float32)
  elif type_name in _BLOCK_TYPES:
    block_bytes, fn = _BLOCK_TYPES[type_name]
    if n % QK:
      raise CheckpointError(f"{where}: {type_name} tensor of {n} values is not a whole number of {QK}-blocks")
    want = n // QK * block_bytes
    values = None if data.size != want else fn(data.reshape(-1, block_bytes)).reshape(-1)
  else:
    raise CheckpointError(f"{where}: GGUF tensor type {type_name} is not supported; supported: "
                          f"{', '.join(SUPPORTED_TYPES)}")
  if values is None:
    raise CheckpointError(f"{where}: {type_name} tensor of shape {tuple(shape)} needs {want} bytes, "
                          f"file has {data.size} (truncated or corrupt)")
  return values.reshape(shape)
