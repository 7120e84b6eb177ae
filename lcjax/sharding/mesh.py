"""Device meshes over the axes `data, fsdp, context, tensor` from a `MeshConfig`.

Devices are grouped into slices (granules): TPU slices by `slice_index`, else processes (multi-host GPU/CPU), else
one slice. Within a slice the mesh follows the ICI sizes (`mesh_utils.create_device_mesh`, topology-aware on TPU);
slices are laid out along the DCN sizes as the major part of each axis, so the full axis size is dcn * ici and the
collectives of an axis with dcn == 1 never leave a slice (what `mesh_utils.create_hybrid_device_mesh` does).
Axis types are Auto (sharding propagates through `jax.jit`; see JAX_NOTES.md).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

from lcjax.config import MESH_AXES, MeshConfig
from lcjax.errors import ShardingError
from lcjax.sharding.rules import Rules, get_rules

CONTEXT_AXIS = "context"  # the mesh axis context-parallel attention (ring, allgather_kv) shards tokens over


def _fill(sizes: Sequence[int], total: int, what: str) -> tuple[int, ...]:
  """Replaces the (at most one) -1 in `sizes` so their product is `total`; checks the product otherwise."""
  known = math.prod(s for s in sizes if s != -1)
  named = ", ".join(f"{a}={s}" for a, s in zip(MESH_AXES, sizes))
  if -1 in sizes:
    if total % known:
      raise ShardingError(f"{what} sizes ({named}) cannot be completed: {known} does not divide {total}")
    return tuple(total // known if s == -1 else s for s in sizes)
  if known != total:
    raise ShardingError(f"{what} sizes ({named}) multiply to {known}, but there are {total}; the mesh must use "
                        f"every device exactly once (set one axis to -1 to fill it automatically)")
  return tuple(sizes)


def slices_of(devices: Sequence) -> list[list]:
  """Devices grouped into slices: by `slice_index` (TPU multi-slice), else by process, else one group."""
  key = ((lambda d: d.slice_index) if all(getattr(d, "slice_index", None) is not None for d in devices)
         else (lambda d: d.process_index))
  groups: dict = {}
  for d in devices:
    groups.setdefault(key(d), []).append(d)
  return [groups[k] for k in sorted(groups)]


def mesh_shapes(cfg: MeshConfig, num_devices: int, num_slices: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(ici, dcn) sizes in MESH_AXES order with -1 filled.

  Raises:
    ShardingError: the sizes do not divide (or do not use all of) the devices and slices.
  """
  dcn = _fill(cfg.dcn_shape, num_slices, f"DCN mesh over {num_slices} slice(s)")
  if num_devices % num_slices:
    raise ShardingError(f"{num_devices} devices do not split into {num_slices} equal slices")
  ici = _fill(cfg.ici_shape, num_devices // num_slices, f"per-slice (ICI) mesh over {num_devices // num_slices} "
              f"device(s)")
  return ici, dcn


def create_mesh(cfg: MeshConfig = MeshConfig(), devices: Sequence | None = None) -> Mesh:
  """A `Mesh` with axes `data, fsdp, context, tensor` (Auto axis types).

  Args:
    cfg: sizes (-1 = fill).  devices: default `jax.devices()` (all processes' devices).
  Returns:
    Mesh whose axis `a` has size ici[a] * dcn[a].
  Raises:
    ShardingError: sizes that do not divide the devices. When the DCN sizes ask for more than one slice but the
      devices form a single slice (one process, no slice_index), the devices are split into that many equal
      contiguous groups, which is how multi-slice layouts are exercised on one host.
  """
  devices = list(jax.devices() if devices is None else devices)
  groups = slices_of(devices)
  want = math.prod(s for s in cfg.dcn_shape if s != -1)
  if len(groups) == 1 and want > 1:
    if len(devices) % want:
      raise ShardingError(f"DCN sizes {dict(zip(MESH_AXES, cfg.dcn_shape))} ask for {want} slices; "
                          f"{len(devices)} devices do not split into {want} equal groups")
    per = len(devices) // want
    groups = [devices[i * per:(i + 1) * per] for i in range(want)]
  ici, dcn = mesh_shapes(cfg, len(devices), len(groups))
  per_slice = [mesh_utils.create_device_mesh(ici, devices=g, allow_split_physical_axes=True) for g in groups]
  grid = np.stack(per_slice).reshape(dcn + ici)  # [dcn..., ici...]
  order = [i for a in range(len(MESH_AXES)) for i in (a, a + len(MESH_AXES))]  # dcn major within each axis
  arr = grid.transpose(order).reshape([d * i for d, i in zip(dcn, ici)])
  return Mesh(arr, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def mesh_sizes(mesh: Mesh) -> dict[str, int]:
  """Axis name -> size."""
  return dict(zip(mesh.axis_names, mesh.devices.shape))


def mesh_and_rules(cfg: MeshConfig, devices: Sequence | None = None) -> tuple[Mesh, Rules]:
  """The mesh of `cfg` and its rule set `cfg.rules` (a name in `RULE_SETS`)."""
  return create_mesh(cfg, devices), get_rules(cfg.rules)
