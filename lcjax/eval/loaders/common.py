"""Reading official data files: missing files and malformed records give `DataError`s naming the file and line.

`read_jsonl(path, problems)` keeps going past a malformed line when given a `problems` list (each skipped line is
recorded as (path, line number, message)), so one bad record does not stop an evaluation; without it the first bad
line raises.
"""

from __future__ import annotations

import ast
import json
import os
from typing import Any

from lcjax.errors import DataError


def resolve(data_path: str | None, relative: str | None, what: str) -> str:
  """`data_path` itself if it is the file, else data_path/relative; DataError if it does not exist."""
  if not data_path:
    raise DataError(f"{what} needs its official data: pass a data path (--data-dir) holding {relative}")
  path = data_path
  if os.path.isdir(data_path) and relative:
    path = os.path.join(data_path, relative)
    if not os.path.exists(path):
      alt = os.path.join(data_path, os.path.basename(relative))
      path = alt if os.path.exists(alt) else path
  if not os.path.exists(path):
    raise DataError(f"{what}: data file not found: {path}")
  return path


def read_jsonl(path: str, problems: list | None = None) -> list[dict]:
  """Records of a JSON-lines file (blank lines skipped).

  Raises:
    DataError: missing file, or (without `problems`) the first line that is not a JSON object, with its number.
  """
  if not os.path.isfile(path):
    raise DataError(f"data file not found: {path}")
  rows = []
  with open(path, "rb") as f:  # decoded per line: one bad byte costs its line, not the file
    for number, raw in enumerate(f, start=1):
      try:
        line = raw.decode("utf-8")
        if not line.strip():
          continue
        row = json.loads(line)
        if not isinstance(row, dict):
          raise ValueError(f"expected a JSON object, got {type(row).__name__}")
      except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        message = f"{path}:{number}: malformed JSON line ({str(e)[:200]})"
        if problems is None:
          raise DataError(message) from None
        problems.append((path, number, message))
        continue
      rows.append(row)
  return rows


def read_json(path: str) -> Any:
  """A JSON file's value; DataError on a missing or malformed file."""
  if not os.path.isfile(path):
    raise DataError(f"data file not found: {path}")
  with open(path, encoding="utf-8") as f:
    try:
      return json.load(f)
    except ValueError as e:
      raise DataError(f"{path}: malformed JSON ({e})") from None


def literal_list(value) -> list:
  """A list field stored either as a JSON list or as a Python list literal string (L-Eval, LooGLE)."""
  if isinstance(value, list):
    return value
  if isinstance(value, str):
    try:
      parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError) as e:
      raise DataError(f"expected a list literal, got {value[:60]!r}... ({e})") from None
    if isinstance(parsed, list):
      return parsed
  raise DataError(f"expected a list, got {type(value).__name__}")


def require(row: dict, keys, where: str) -> None:
  """DataError naming the first missing key of an official record."""
  for key in keys:
    if key not in row:
      raise DataError(f"{where}: record has no field {key!r} (fields: {sorted(row)})")


def limit(rows: list, n: int) -> list:
  """The first n rows (n <= 0: all)."""
  return rows if n <= 0 else rows[:n]
