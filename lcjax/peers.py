"""Calls into the reference-peer environment (`.venv-peers`, Python 3.11 with torch CPU and HF transformers).

Parity tests and benchmarks run peer scripts from `peers/` in that environment through a subprocess, sending one
JSON request on stdin and reading one JSON answer from stdout.
"""

from __future__ import annotations

import json
import os
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peer_python() -> str | None:
  """The peers' interpreter (`$LCJAX_PEERS_PYTHON` or `<repo>/.venv-peers/bin/python`), or None if absent."""
  path = os.environ.get("LCJAX_PEERS_PYTHON") or os.path.join(REPO_ROOT, ".venv-peers", "bin", "python")
  return path if os.path.isfile(path) else None


def call_peer(script: str, request: dict, timeout: float = 1800.0, threads: int | None = None) -> dict:
  """Runs `peers/<script>` in the peers environment with `request`; returns its JSON answer.

  Raises:
    RuntimeError: no peers environment (run `make peers`) or the peer failed (its stderr is included).
  """
  python = peer_python()
  if python is None:
    raise RuntimeError("the reference-peer environment is missing: run `make peers`")
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
  if threads:
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
  proc = subprocess.run([python, os.path.join(REPO_ROOT, "peers", script)], input=json.dumps(request),
                        capture_output=True, text=True, timeout=timeout, env=env)
  if proc.returncode != 0:
    raise RuntimeError(f"peer {script} failed ({proc.returncode}): {proc.stderr[-3000:]}")
  return json.loads(proc.stdout)
