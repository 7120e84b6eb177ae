"""Random-access text and token sources for grain (`__len__` + `__getitem__`), by format (registry `SOURCES`).

  jsonl        one JSON object per line; record = the object (a dict)          JsonlSource(path)
  arrayrecord  ArrayRecord file of UTF-8 JSON objects (or plain text)           ArrayRecordSource(path)
  zarr         tokenized corpus in tensorstore zarr arrays (tokens + offsets)   TokenStore(path)
  text         a directory of .txt files; record = {"text": file contents}      TextDirSource(path)

Every source raises `DataError` naming the file for a missing path, an empty dataset or a malformed record.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Sequence

import numpy as np

from lcjax.errors import DataError
from lcjax.registry import Registry

SOURCES: Registry[Callable] = Registry("data source format")


def _require_file(path: str, what: str) -> str:
  if not os.path.exists(path):
    raise DataError(f"{what} not found: {path}")
  return path


def _nonempty(n: int, path: str) -> int:
  if n == 0:
    raise DataError(f"empty dataset: {path} holds no records")
  return n


@SOURCES.register("jsonl")
class JsonlSource:
  """JSON lines; record i = the i-th non-blank line parsed (a dict). Byte offsets are indexed once."""

  def __init__(self, path: str):
    self.path = _require_file(path, "jsonl file")
    offsets, pos = [], 0
    with open(path, "rb") as f:
      for line in f:
        if line.strip():
          offsets.append(pos)
        pos += len(line)
    self.offsets = np.asarray(offsets, np.int64)
    _nonempty(len(offsets), path)

  def __len__(self) -> int:
    return len(self.offsets)

  def __getitem__(self, index: int) -> dict:
    with open(self.path, "rb") as f:
      f.seek(int(self.offsets[index]))
      line = f.readline()
    try:
      return json.loads(line)
    except json.JSONDecodeError as e:
      raise DataError(f"{self.path}: record {index} is not valid JSON ({e})") from None


@SOURCES.register("arrayrecord")
class ArrayRecordSource:
  """ArrayRecord records holding UTF-8 JSON objects, or plain text (record = {"text": ...})."""

  def __init__(self, path: str):
    import grain

    self.path = _require_file(path, "arrayrecord file")
    self.source = grain.sources.ArrayRecordDataSource([path])
    _nonempty(len(self.source), path)

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict:
    raw = self.source[index].decode("utf-8")
    if raw.lstrip().startswith("{"):
      try:
        return json.loads(raw)
      except json.JSONDecodeError:
        pass
    return {"text": raw}


def write_array_record(path: str, records: Sequence[dict]) -> None:
  """Writes dict records as UTF-8 JSON into an ArrayRecord file."""
  from array_record.python.array_record_module import ArrayRecordWriter

  writer = ArrayRecordWriter(path, "group_size:1")
  for r in records:
    writer.write(json.dumps(r).encode("utf-8"))
  writer.close()


@SOURCES.register("text")
class TextDirSource:
  """Every `*.txt` file of a directory (sorted by name); record = {"text": ..., "name": file name}."""

  def __init__(self, path: str):
    self.path = _require_file(path, "text directory")
    self.files = sorted(f for f in os.listdir(path) if f.endswith(".txt"))
    _nonempty(len(self.files), path)

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, index: int) -> dict:
    with open(os.path.join(self.path, self.files[index]), encoding="utf-8") as f:
      return {"text": f.read(), "name": self.files[index]}


def _zarr_spec(path: str, name: str) -> dict:
  return {"driver": "zarr", "kvstore": {"driver": "file", "path": os.path.join(path, name)}}


def write_token_store(path: str, docs: Sequence[np.ndarray], chunk: int = 1 << 16) -> None:
  """Stores tokenized documents as two zarr arrays: `tokens` [N] int32 (all documents concatenated) and
  `offsets` [num_docs + 1] int64 (document i is tokens[offsets[i]:offsets[i+1]]).
  """
  import tensorstore as ts

  if not docs:
    raise DataError(f"empty dataset: no documents to write to {path}")
  lengths = np.asarray([len(d) for d in docs], np.int64)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  flat = np.concatenate([np.asarray(d, np.int32) for d in docs]) if offsets[-1] else np.zeros(0, np.int32)
  for name, arr in (("tokens", flat), ("offsets", offsets)):
    spec = {**_zarr_spec(path, name), "metadata": {"shape": [len(arr)], "chunks": [max(1, min(chunk, len(arr)))],
                                                   "dtype": "<i4" if arr.dtype == np.int32 else "<i8"}}
    store = ts.open(spec, create=True, delete_existing=True).result()
    store.write(arr).result()


@SOURCES.register("zarr")
class TokenStore:
  """Random access to a tokenized corpus written by `write_token_store`; record = {"tokens": [n] int32}."""

  def __init__(self, path: str):
    import tensorstore as ts

    self.path = _require_file(path, "token store")
    try:
      self.tokens = ts.open(_zarr_spec(path, "tokens")).result()
      self.offsets = np.asarray(ts.open(_zarr_spec(path, "offsets")).result().read().result())
    except ValueError as e:
      raise DataError(f"{path}: not a token store ({e})") from None
    _nonempty(len(self.offsets) - 1, path)

  def __len__(self) -> int:
    return len(self.offsets) - 1

  def __getitem__(self, index: int) -> dict:
    lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
    return {"tokens": np.asarray(self.tokens[lo:hi].read().result(), np.int32)}


def open_source(format: str, path: str):
  """The source of `format` (a name in SOURCES) over `path`."""
  return SOURCES.get(format)(path)
