"""Train checkpoints: orbax `CheckpointManager` with async saves and atomic commits, holding the train state, the
data iterator's state (JSON) and run metadata (JSON) per step, so a resumed run continues exactly.

Orbax writes each step into a temporary directory and renames it when every item is written (the commit); a
process killed mid-save leaves only the temporary directory, which `latest_step` ignores, so the previous complete
step is restored. A checkpoint of another model shape raises `CheckpointError` naming the parameter.
"""

from __future__ import annotations

import logging
import os

import jax

from lcjax.checkpoint.orbax_io import check_saved_shapes
from lcjax.errors import CheckpointError
from lcjax.training.config import CheckpointConfig

log = logging.getLogger(__name__)


class DamagedCheckpointError(CheckpointError):
  """One step's checkpoint cannot be read (files missing, truncated or corrupt); older steps may still be intact."""


class Checkpointer:
  """Saves and restores (train state, data state, metadata) under `directory/<step>`.

  Args:
    directory: the run's checkpoint directory (created).  cfg: cadence, retention, async.
  """

  def __init__(self, directory: str, cfg: CheckpointConfig = CheckpointConfig()):
    import orbax.checkpoint as ocp

    self.directory = os.path.abspath(directory)
    self.cfg = cfg
    options = ocp.CheckpointManagerOptions(max_to_keep=cfg.max_to_keep, create=True,
                                           enable_async_checkpointing=cfg.async_save)
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data", "meta"))

  def latest_step(self) -> int | None:
    """The newest committed step, or None."""
    return self.manager.latest_step()

  def save(self, step: int, state, data_state: dict, meta: dict) -> None:
    """Starts an (async) save of `state` (any pytree of arrays) with JSON `data_state` and `meta`."""
    import orbax.checkpoint as ocp

    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                    data=ocp.args.JsonSave(data_state),
                                                    meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, step: int, abstract_state) -> tuple[object, dict, dict]:
    """(state, data_state, meta) of `step`, with `abstract_state`'s structure, shapes, dtypes and shardings.

    Raises:
      CheckpointError: the saved arrays do not match (another model shape) or the files cannot be read.
    """
    import orbax.checkpoint as ocp

    where = os.path.join(self.directory, str(step))
    try:
      with ocp.StandardCheckpointer() as reader:
        saved = reader.metadata(os.path.join(where, "state"))
    except Exception as e:  # noqa: BLE001
      raise DamagedCheckpointError(f"{where}: cannot read the checkpoint's metadata ({type(e).__name__}: "
                                   f"{str(e)[:300]})") from None
    check_saved_shapes(getattr(saved, "item_metadata", saved), abstract_state, where)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
                          abstract_state)
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                               data=ocp.args.JsonRestore(),
                                                               meta=ocp.args.JsonRestore()))
    except Exception as e:  # noqa: BLE001 - orbax raises many types for damaged checkpoints
      raise DamagedCheckpointError(f"{where}: cannot restore ({type(e).__name__}: {str(e)[:300]})") from None
    return out["state"], out["data"], out["meta"]

  def restore_latest(self, abstract_state, check_data=None) -> tuple[int | None, object, dict | None]:
    """Restores the newest intact step, skipping (and reporting) damaged newer ones.

    Args:
      abstract_state: as for `restore`.  check_data: (step, data_state) -> None, raising CheckpointError for a data
        state that cannot resume (then the step counts as damaged).
    Returns:
      (step, state, data_state), or (None, abstract_state, None) when there is no checkpoint.
    Raises:
      CheckpointError: every checkpoint is damaged (each is named), or one was saved by a model of another shape.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    damaged = []
    for step in steps:
      try:
        state, data, _ = self.restore(step, abstract_state)
        if check_data is not None:
          check_data(step, data)
      except DamagedCheckpointError as e:
        damaged.append(str(e))
        log.warning("skipping damaged checkpoint: %s", e)
        self._set_aside(step)
        continue
      if damaged:
        log.warning("resumed from step %d, the newest intact checkpoint in %s", step, self.directory)
      return step, state, data
    if damaged:
      raise CheckpointError(f"{self.directory}: no intact checkpoint to resume from: " + " | ".join(damaged))
    return None, abstract_state, None

  def _set_aside(self, step: int) -> None:
    """Renames a damaged step's directory to `<step>.damaged` (kept for inspection; orbax ignores it), so the
    resumed run can save that step again."""
    src = os.path.join(self.directory, str(step))
    dst, n = f"{src}.damaged", 1
    while os.path.exists(dst):
      dst, n = f"{src}.damaged-{n}", n + 1
    try:
      os.rename(src, dst)
    except OSError as e:
      raise CheckpointError(f"{src}: damaged and cannot be moved aside ({e})") from None
    self.manager.reload()

  def wait(self) -> None:
    """Blocks until pending async saves are committed."""
    self.manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self.manager.wait_until_finished()
    self.manager.close()


def check_same_structure(reference, value, where: str, path: str = "") -> None:
  """Raises DamagedCheckpointError unless `value` has `reference`'s keys, lists and leaf types (a JSON
  iterator state checked against a fresh iterator's, so a damaged one never reaches `set_state`)."""
  if isinstance(reference, dict):
    if not isinstance(value, dict) or set(value) != set(reference):
      raise DamagedCheckpointError(f"{where}{path}: expected keys {sorted(reference)}, got {str(value)[:100]!r}")
    for k in reference:
      check_same_structure(reference[k], value[k], where, f"{path}.{k}")
  elif isinstance(reference, (list, tuple)):  # lengths may change as the iterator advances (buffers)
    if not isinstance(value, (list, tuple)):
      raise DamagedCheckpointError(f"{where}{path}: expected a list, got {str(value)[:100]!r}")
  elif reference is not None and type(value) is not type(reference):
    if not (isinstance(reference, float) and type(value) is int):
      raise DamagedCheckpointError(f"{where}{path}: expected {type(reference).__name__}, got {str(value)[:100]!r}")
