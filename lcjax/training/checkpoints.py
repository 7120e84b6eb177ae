"""Train checkpoints: orbax `CheckpointManager` with async saves and atomic commits, holding the train state, the
data iterator's state (JSON) and run metadata (JSON) per step, so a resumed run continues exactly.

Orbax writes each step into a temporary directory and renames it when every item is written (the commit); a
process killed mid-save leaves only the temporary directory, which `latest_step` ignores, so the previous complete
step is restored. A checkpoint of another model shape raises `CheckpointError` naming the parameter.
"""

from __future__ import annotations

import os

import jax

from lcjax.checkpoint.orbax_io import check_saved_shapes
from lcjax.errors import CheckpointError
from lcjax.training.config import CheckpointConfig


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
      raise CheckpointError(f"{where}: cannot read the checkpoint's metadata ({type(e).__name__}: {e})") from None
    check_saved_shapes(getattr(saved, "item_metadata", saved), abstract_state, where)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
                          abstract_state)
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                               data=ocp.args.JsonRestore(),
                                                               meta=ocp.args.JsonRestore()))
    except Exception as e:  # noqa: BLE001 - orbax raises many types for damaged checkpoints
      raise CheckpointError(f"{where}: cannot restore ({type(e).__name__}: {str(e)[:300]})") from None
    return out["state"], out["data"], out["meta"]

  def wait(self) -> None:
    """Blocks until pending async saves are committed."""
    self.manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self.manager.wait_until_finished()
    self.manager.close()
