"""A bounded GGUF parser: header, metadata and tensor infos, with every count and length checked against the bytes
that are left before anything is allocated, so no file can make it loop or allocate without bound.

Layout (little-endian; https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
  magic "GGUF" | version u32 (2, 3) | tensor_count u64 | kv_count u64
  kv_count x (key: string, value_type u32, value)        string = u64 length + UTF-8 bytes
  tensor_count x (name: string, n_dims u32, dims u64[n_dims] (fastest first), ggml type u32, offset u64)
  padding to `general.alignment` (default 32) | data section: tensor bytes at their offsets (aligned)
Tensor data are views of a read-only memory map; nothing is dequantised here.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import struct

import numpy as np

from lcjax.errors import CheckpointError

# value type id -> (name, struct code or None for string/array)
VALUE_TYPES = {0: ("UINT8", "B"), 1: ("INT8", "b"), 2: ("UINT16", "H"), 3: ("INT16", "h"), 4: ("UINT32", "I"),
               5: ("INT32", "i"), 6: ("FLOAT32", "f"), 7: ("BOOL", "?"), 8: ("STRING", None), 9: ("ARRAY", None),
               10: ("UINT64", "Q"), 11: ("INT64", "q"), 12: ("FLOAT64", "d")}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
          12: "<f8"}
INT_TYPES = frozenset({0, 1, 2, 3, 4, 5, 10, 11})
FLOAT_TYPES = frozenset({6, 12})


@dataclasses.dataclass(frozen=True)
class ReaderLimits:
  """Upper bounds on a GGUF header (far above any real model's, far below what exhausts memory)."""

  max_kv: int = 4096
  max_tensors: int = 65536
  max_key_bytes: int = 65536
  max_string_bytes: int = 1 << 24  # one metadata string (a chat template is a few KB)
  max_array_items: int = 1 << 24  # vocabularies and merges are ~10^5
  max_dims: int = 4
  max_elements: int = 1 << 40  # one tensor


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  """One tensor's header entry. dims are ggml order (fastest first); `shape` is the numpy order (reversed)."""

  name: str
  dims: tuple[int, ...]
  ggml_type: int
  offset: int  # relative to the data section

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(reversed(self.dims))


class _Cursor:
  """Reads little-endian values from a buffer, raising CheckpointError (with the byte offset) past its end."""

  def __init__(self, buf, path: str, limits: ReaderLimits):
    self.buf, self.pos, self.path, self.limits, self.size = buf, 0, path, limits, len(buf)

  def fail(self, what: str):
    raise CheckpointError(f"{self.path}: corrupt GGUF header at byte {self.pos}: {what}")

  def take(self, n: int) -> int:
    if n < 0 or n > self.size - self.pos:
      self.fail(f"needs {n} bytes, only {self.size - self.pos} left (truncated or corrupt)")
    start = self.pos
    self.pos += n
    return start

  def scalar(self, code: str):
    start = self.take(struct.calcsize("<" + code))
    return struct.unpack_from("<" + code, self.buf, start)[0]

  def string(self, limit: int, what: str) -> str:
    n = self.scalar("Q")
    if n > limit:
      self.fail(f"{what} of {n} bytes exceeds the limit of {limit}")
    start = self.take(n)
    try:
      return bytes(self.buf[start:start + n]).decode("utf-8")
    except UnicodeDecodeError as e:
      self.fail(f"{what} is not UTF-8 ({e.reason} at {e.start})")

  def value(self, vtype: int, key: str, nested: bool = False):
    if vtype not in VALUE_TYPES:
      self.fail(f"metadata {key!r} has value type {vtype}; known types: 0..12")
    code = VALUE_TYPES[vtype][1]
    if code is not None:
      return self.scalar(code)
    if vtype == 8:
      return self.string(self.limits.max_string_bytes, f"string value of {key!r}")
    if nested:
      self.fail(f"metadata {key!r} is an array of arrays, which lcjax does not read")
    item_type, count = self.scalar("I"), self.scalar("Q")
    if count > self.limits.max_array_items:
      self.fail(f"array {key!r} of {count} items exceeds the limit of {self.limits.max_array_items}")
    if item_type in _NUMPY:
      dt = np.dtype(_NUMPY[item_type])
      if count * dt.itemsize > self.size - self.pos:
        self.fail(f"array {key!r} of {count} items needs {count * dt.itemsize} bytes, only "
                  f"{self.size - self.pos} left")
      start = self.take(count * dt.itemsize)
      values = np.frombuffer(self.buf, dt, count, start)
      return (values != 0).tolist() if item_type == 7 else values.tolist()
    if item_type == 8:
      return self.strings(count, key)
    return [self.value(item_type, key, nested=True) for _ in range(count)]

  def strings(self, count: int, key: str) -> list[str]:
    """An array of `count` strings (the vocabulary, the merges): a tight loop, each length checked."""
    if count * 8 > self.size - self.pos:  # each string needs at least its length word
      self.fail(f"array {key!r} of {count} strings cannot fit the {self.size - self.pos} bytes left")
    unpack, buf, size, pos = struct.Struct("<Q").unpack_from, self.buf, self.size, self.pos
    limit = self.limits.max_string_bytes
    raw = []
    for _ in range(count):
      if pos + 8 > size:
        self.pos = pos
        self.fail(f"array {key!r} runs past the end of the file")
      n = unpack(buf, pos)[0]
      pos += 8
      if n > limit or n > size - pos:
        self.pos = pos
        self.fail(f"a string of {n} bytes in array {key!r} exceeds the limit or the file")
      raw.append(buf[pos:pos + n])
      pos += n
    self.pos = pos
    try:
      return [b.decode("utf-8") for b in raw]
    except UnicodeDecodeError as e:
      self.fail(f"a string in array {key!r} is not UTF-8 ({e.reason})")


@dataclasses.dataclass
class RawGGUF:
  """What the header says: metadata values and their type ids, tensor infos, and where the data section starts."""

  version: int
  metadata: dict
  types: dict  # key -> value type id (arrays: (9, item type))
  tensors: list[TensorInfo]
  alignment: int
  data_start: int
  file_size: int


def parse_header(path: str, buf, limits: ReaderLimits = ReaderLimits()) -> RawGGUF:
  """Parses the header of a GGUF file held in `buf` (bytes or mmap), bounded by `limits` and by len(buf).

  Raises:
    CheckpointError: bad magic/version, a count, length or type that is out of bounds, non-UTF-8 text, or a header
      that runs past the end of the file.
  """
  c = _Cursor(buf, path, limits)
  if c.size < 24 or bytes(buf[:4]) != b"GGUF":
    raise CheckpointError(f"{path}: not a readable GGUF file (no GGUF magic; truncated or corrupt)")
  c.pos = 4
  version, n_tensors, n_kv = c.scalar("I"), c.scalar("Q"), c.scalar("Q")
  if version not in (2, 3):
    c.fail(f"GGUF version {version} is not supported; supported: 2, 3")
  if n_kv > limits.max_kv or n_tensors > limits.max_tensors:
    c.fail(f"{n_kv} metadata entries / {n_tensors} tensors exceed the limits {limits.max_kv} / {limits.max_tensors}")
  metadata, types = {}, {}
  for _ in range(n_kv):
    key = c.string(limits.max_key_bytes, "metadata key")
    if key in metadata:
      c.fail(f"metadata key {key!r} appears twice")
    vtype = c.scalar("I")
    if vtype == 9 and c.pos + 4 <= c.size:
      types[key] = (9, struct.unpack_from("<I", buf, c.pos)[0])
    else:
      types[key] = vtype
    metadata[key] = c.value(vtype, key)
  tensors, names = [], set()
  for _ in range(n_tensors):
    name = c.string(limits.max_key_bytes, "tensor name")
    if name in names:
      c.fail(f"tensor {name!r} appears twice")
    names.add(name)
    n_dims = c.scalar("I")
    if not 1 <= n_dims <= limits.max_dims:
      c.fail(f"tensor {name!r} has {n_dims} dimensions; accepted: 1..{limits.max_dims}")
    dims = tuple(c.scalar("Q") for _ in range(n_dims))
    if min(dims) < 1 or int(np.prod([float(d) for d in dims])) > limits.max_elements:
      c.fail(f"tensor {name!r} has dimensions {dims}; each must be >= 1 and the product <= {limits.max_elements}")
    tensors.append(TensorInfo(name, dims, c.scalar("I"), c.scalar("Q")))
  alignment = metadata.get("general.alignment", 32)
  if types.get("general.alignment", 4) not in INT_TYPES or not 1 <= alignment <= 1 << 16 or \
      alignment & (alignment - 1):
    c.fail(f"general.alignment {alignment!r} is not a power of two in 1..65536")
  data_start = -(-c.pos // alignment) * alignment
  return RawGGUF(version, metadata, types, tensors, alignment, data_start, c.size)


def tensor_nbytes(info: TensorInfo, path: str) -> tuple[str, int]:
  """(ggml type name, stored bytes) of a tensor; CheckpointError for an unknown type or a row that is not a
  whole number of the type's blocks."""
  from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

  try:
    qtype = GGMLQuantizationType(info.ggml_type)
  except ValueError:
    raise CheckpointError(f"{path}: tensor {info.name!r} has unknown ggml type {info.ggml_type}") from None
  block, type_size = GGML_QUANT_SIZES[qtype]
  if info.dims[0] % block:
    raise CheckpointError(f"{path}: tensor {info.name!r} of type {qtype.name} has rows of {info.dims[0]} values, "
                          f"not a whole number of {block}-value blocks")
  n = 1
  for d in info.dims:
    n *= d
  return qtype.name, n // block * type_size


def check_layout(raw: RawGGUF, path: str) -> dict[str, tuple[str, int, int]]:
  """Checks every tensor's bytes: aligned, inside the data section, and not overlapping another tensor.

  Returns:
    {name: (type name, absolute start, byte count)}.
  Raises:
    CheckpointError: naming the tensor and the offending offset.
  """
  spans = {}
  data_size = raw.file_size - raw.data_start
  for t in raw.tensors:
    type_name, nbytes = tensor_nbytes(t, path)
    if t.offset % raw.alignment:
      raise CheckpointError(f"{path}: tensor {t.name!r} offset {t.offset} is not a multiple of the alignment "
                            f"{raw.alignment} (corrupt)")
    if t.offset > data_size or nbytes > data_size - t.offset:
      raise CheckpointError(f"{path}: tensor {t.name!r} (offset {t.offset}, {nbytes} bytes) extends past the end "
                            f"of the file's {data_size}-byte data section (truncated or corrupt)")
    spans[t.name] = (type_name, raw.data_start + t.offset, nbytes)
  ordered = sorted(spans.items(), key=lambda kv: kv[1][1])
  ends = [(b, sb) for b, (_, sb, _) in ordered[1:]] + [("the end of the file", raw.file_size)]
  for (a, (_, sa, na)), (b, sb) in zip(ordered, ends):
    if sa + na > sb:
      raise CheckpointError(f"{path}: tensors {a!r} and {b!r} overlap (bytes {sa}..{sa + na} and {sb}..) (corrupt)")
    # Writers pack tensors, each padded to the alignment: a larger gap means a tensor's type or shape was changed
    # to one that needs fewer bytes than it was written with (it would load silently as different values).
    if sb - (sa + na) >= raw.alignment:
      raise CheckpointError(f"{path}: {sb - (sa + na)} unaccounted bytes between tensor {a!r} (ends at {sa + na}) "
                            f"and {b} (at {sb}): its type or shape does not match the bytes written (corrupt)")
  return spans


def open_gguf(path: str, limits: ReaderLimits = ReaderLimits()) -> tuple[RawGGUF, dict[str, tuple[str, np.ndarray]]]:
  """Parses and checks a GGUF file; returns the header and {name: (type name, uint8 view of its bytes)}."""
  if not os.path.isfile(path):
    raise CheckpointError(f"GGUF file not found: {path}")
  try:
    with open(path, "rb") as f:
      buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.path.getsize(path) else b""
  except (OSError, ValueError) as e:
    raise CheckpointError(f"{path}: cannot read ({e})") from None
  raw = parse_header(path, buf, limits)
  spans = check_layout(raw, path)
  data = np.frombuffer(buf, np.uint8) if len(buf) else np.zeros(0, np.uint8)
  return raw, {name: (type_name, data[start:start + n]) for name, (type_name, start, n) in spans.items()}
