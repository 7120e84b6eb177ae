"""Orbax save/restore of a model's params (atomic: orbax commits a finished directory by rename)."""

from __future__ import annotations

import os

import jax
from flax import nnx

from lcjax.errors import CheckpointError


def _key(path) -> str:
  """A tree path as 'a.0.b', the same for int and str keys (orbax metadata stores list indices as strings)."""
  return ".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def check_saved_shapes(saved, target, where: str) -> None:
  """Raises `CheckpointError` naming the first array whose saved shape differs from `target`'s (a model of
  another shape). Args: saved: orbax metadata tree.  target: tree of arrays / ShapeDtypeStructs.  where: path."""
  flat_saved = {_key(p): x for p, x in jax.tree_util.tree_flatten_with_path(saved)[0]}
  for p, want in jax.tree_util.tree_flatten_with_path(target)[0]:
    got = flat_saved.get(_key(p))
    if got is not None and hasattr(got, "shape") and tuple(got.shape) != tuple(want.shape):
      raise CheckpointError(f"{where}: parameter {_key(p)} was saved with shape "
                            f"{tuple(got.shape)}, the model expects {tuple(want.shape)}")


def save_params(directory: str, state) -> None:
  """Saves an `nnx.State` (or any pytree of arrays) to `directory`, which must not exist yet."""
  import orbax.checkpoint as ocp

  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.abspath(directory), nnx.to_pure_dict(state) if isinstance(state, nnx.State) else state)


def restore_params(directory: str, abstract_state):
  """Restores params saved by `save_params` into the structure, shapes and dtypes of `abstract_state`.

  Raises:
    CheckpointError: missing directory, or saved params that do not match the model's shapes.
  """
  import orbax.checkpoint as ocp

  path = os.path.abspath(directory)
  if not os.path.isdir(path):
    raise CheckpointError(f"orbax checkpoint not found: {path}")
  is_state = isinstance(abstract_state, nnx.State)
  target = nnx.to_pure_dict(abstract_state) if is_state else abstract_state
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), target)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      meta = ckptr.metadata(path)
      check_saved_shapes(getattr(meta, "item_metadata", meta), target, path)
      restored = ckptr.restore(path, target)
  except CheckpointError:
    raise
  except Exception as e:  # noqa: BLE001 - orbax raises many types for bad directories
    raise CheckpointError(f"{path}: cannot restore ({type(e).__name__}: {e})") from None
  if is_state:
    nnx.replace_by_pure_dict(abstract_state, restored)
    return abstract_state
  return restored
