"""Helpers for running TPU kernels in the Mosaic TPU interpreter on CPU."""

from __future__ import annotations

import contextlib

from jax.experimental.pallas import tpu as pltpu


@contextlib.contextmanager
def reset_on_failure():
  """Resets the TPU interpreter's global state (semaphores, buffers) if the body raises, then re-raises."""
  try:
    yield
  except BaseException:
    pltpu.reset_tpu_interpret_mode_state()
    raise
