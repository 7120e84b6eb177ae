"""Data shipped inside the package (no download at run time)."""

from __future__ import annotations

import os

ASSETS_DIR = os.path.dirname(__file__)
BUNDLED_DATA_DIR = os.path.join(ASSETS_DIR, "data")


def data_dir() -> str:
  """The folder of official benchmark data: `$LCJAX_DATA_DIR` when set (the full official files), else the small
  real subsets bundled in `lcjax/assets/data` (L-Eval, LooGLE, LongProc, LongICLBench, GSM8K; each with its SOURCE
  and LICENSE; made by scripts/vendor_data.py)."""
  return os.environ.get("LCJAX_DATA_DIR") or BUNDLED_DATA_DIR


def haystack_files() -> list[str]:
  """Paths of the bundled Paul Graham essays (gkamradt/LLMTest_NeedleInAHaystack), sorted by name."""
  folder = os.path.join(ASSETS_DIR, "haystack")
  return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".txt"))


def haystack_text() -> str:
  """All bundled essays concatenated, separated by blank lines (the NIAH haystack)."""
  parts = []
  for path in haystack_files():
    with open(path, encoding="utf-8") as f:
      parts.append(f.read().strip())
  return "\n\n".join(parts)


def natural_image_files() -> list[str]:
  """Paths of the bundled natural photographs (scikit-image sample data, CC0 / public domain), sorted by name."""
  folder = os.path.join(ASSETS_DIR, "natural")
  return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".jpg"))
