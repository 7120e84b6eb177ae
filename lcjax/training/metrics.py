"""Training metrics: a JSONL log, TensorBoard event files (written directly, no TensorFlow) and an MFU estimate.

  flops/token = 6 N + 12 L N_h H T   (PaLM appendix B: weights fwd+bwd, plus attention scores and values)
  MFU = tokens/s * flops/token / (devices * peak FLOP/s)
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time

import numpy as np

from lcjax.config import ModelConfig


def flops_per_token(cfg: ModelConfig, seq_len: int, num_params: int) -> float:
  """Training FLOPs per token of a decoder with `num_params` parameters at sequence length T."""
  return 6.0 * num_params + 12.0 * cfg.num_layers * cfg.num_heads * cfg.head_dim * seq_len


def mfu(tokens_per_second: float, flops_token: float, peak_flops: float, devices: int = 1) -> float:
  """Model FLOPs utilisation in [0, 1]."""
  return tokens_per_second * flops_token / max(peak_flops * devices, 1.0)


class JsonlLog:
  """Appends one JSON object per line (flushed), so a killed run keeps every logged step."""

  def __init__(self, path: str):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    self.path = path
    self._f = open(path, "a", encoding="utf-8")

  def write(self, record: dict) -> None:
    self._f.write(json.dumps(record) + "\n")
    self._f.flush()

  def close(self) -> None:
    self._f.close()


def read_jsonl(path: str) -> list[dict]:
  """All records of a JSONL log (a torn last line from a killed process is skipped)."""
  out = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return out


_CRC_TABLE = []
for _i in range(256):
  _c = _i
  for _ in range(8):
    _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
  _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), as TFRecord framing needs."""
  crc = 0xFFFFFFFF
  for b in data:
    crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  out = bytearray()
  while True:
    b, n = n & 0x7F, n >> 7
    out.append(b | (0x80 if n else 0))
    if not n:
      return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
  return _varint(num << 3 | wire) + payload


def _event(step: int, wall: float, tag: str | None = None, value: float | None = None,
           file_version: str | None = None) -> bytes:
  """A serialized tensorflow.Event proto: wall_time (1), step (2), file_version (3) or summary (5)."""
  msg = _field(1, 1, struct.pack("<d", wall)) + _field(2, 0, _varint(step))
  if file_version is not None:
    v = file_version.encode()
    return msg + _field(3, 2, _varint(len(v)) + v)
  t = tag.encode()
  val = _field(1, 2, _varint(len(t)) + t) + _field(2, 5, struct.pack("<f", value))  # Summary.Value tag, simple
  summary = _field(1, 2, _varint(len(val)) + val)
  return msg + _field(5, 2, _varint(len(summary)) + summary)


class TensorBoardWriter:
  """Scalar summaries in a TensorBoard `events.out.tfevents.*` file (TFRecord of Event protos)."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
    self.path = os.path.join(logdir, name)
    self._f = open(self.path, "ab")
    self._record(_event(0, time.time(), file_version="brain.Event:2"))

  def _record(self, data: bytes) -> None:
    header = struct.pack("<Q", len(data))
    self._f.write(header + struct.pack("<I", _masked_crc(header)) + data + struct.pack("<I", _masked_crc(data)))
    self._f.flush()

  def scalars(self, step: int, values: dict) -> None:
    """Writes every finite scalar of `values` at `step`."""
    now = time.time()
    for tag, v in values.items():
      if isinstance(v, (int, float, np.floating, np.integer)) and np.isfinite(v):
        self._record(_event(int(step), now, tag, float(v)))

  def close(self) -> None:
    self._f.close()


def read_tfevents(path: str) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar in an events file written by `TensorBoardWriter` (checks the CRCs)."""
  out = []
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos < len(data):
    (n,) = struct.unpack_from("<Q", data, pos)
    assert struct.unpack_from("<I", data, pos + 8)[0] == _masked_crc(data[pos:pos + 8])
    rec = data[pos + 12:pos + 12 + n]
    assert struct.unpack_from("<I", data, pos + 12 + n)[0] == _masked_crc(rec)
    pos += 16 + n
    event = dict(_proto_fields(rec))
    if 5 in event:
      value = dict(_proto_fields(dict(_proto_fields(event[5]))[1]))
      out.append((event.get(2, 0), value[1].decode(), struct.unpack("<f", value[2])[0]))
  return out


def _proto_fields(buf: bytes):
  """(field number, value) pairs of a protobuf message (varint ints, bytes for the other wire types)."""
  pos = 0
  while pos < len(buf):
    key, pos = _read_varint(buf, pos)
    wire = key & 7
    if wire == 0:
      value, pos = _read_varint(buf, pos)
    elif wire == 2:
      n, pos = _read_varint(buf, pos)
      value, pos = buf[pos:pos + n], pos + n
    else:
      n = 8 if wire == 1 else 4
      value, pos = buf[pos:pos + n], pos + n
    yield key >> 3, value


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
  shift = result = 0
  while True:
    b = buf[pos]
    result |= (b & 0x7F) << shift
    pos += 1
    if not b & 0x80:
      return result, pos
    shift += 7
