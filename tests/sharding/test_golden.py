"""Golden partition specs: the sharding of every param and KV-cache leaf, per preset x rule set, on 8 devices.

A change of sharding must be a reviewed change: regenerate with
  LCJAX_UPDATE_GOLDEN=1 python -m pytest tests/sharding/test_golden.py
and commit tests/sharding/golden_partition_specs.txt with the change that caused it.
"""

import dataclasses
import os
import re

import jax
import pytest
from flax import nnx

from lcjax.config import MeshConfig
from lcjax.kvcache.dense import init_dense_cache
from lcjax.models.build import abstract_model
from lcjax.sharding.mesh import create_mesh, mesh_sizes
from lcjax.sharding.partition import cache_logical_axes, cache_shardings, param_shardings
from tests.tiny import SMOLLM2_135M, TINY

GOLDEN = os.path.join(os.path.dirname(__file__), "golden_partition_specs.txt")
PRESETS = {"tiny": TINY, "smollm2-135m": SMOLLM2_135M}
MESHES = {"fsdp": MeshConfig(fsdp=8), "fsdp_tp": MeshConfig(fsdp=4, tensor=2),
          "fsdp_cp": MeshConfig(fsdp=2, context=4), "decode": MeshConfig(data=2, fsdp=1, context=2, tensor=2)}
CACHE_BATCH, CACHE_LEN = 8, 1024


def _path(path) -> str:
  keys = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
  keys = [k for k in keys if k != "value"]
  return re.sub(r"\.\d+(?=\.|$)", ".*", ".".join(keys))  # layer indices collapse to *


def _lines(kind: str, tree, logical, shardings) -> list[str]:
  out, seen = [], set()
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  for (path, leaf), names, sh in zip(flat, logical, jax.tree.leaves(shardings)):
    line = f"  {kind} {_path(path):28s} {str(tuple(leaf.shape)):22s} {str(tuple(names)):58s} -> {sh.spec}"
    if line not in seen:
      seen.add(line)
      out.append(line)
  return out


def snapshot() -> str:
  lines = []
  for preset, cfg in PRESETS.items():
    _, state = abstract_model(cfg)
    cache = jax.eval_shape(lambda c=cfg: init_dense_cache(c, CACHE_BATCH, CACHE_LEN))
    param_names = jax.tree.leaves(nnx.get_partition_spec(state), is_leaf=lambda x: isinstance(x, tuple))
    cache_names = jax.tree.leaves(cache_logical_axes(cache),
                                  is_leaf=lambda x: isinstance(x, tuple) and all(isinstance(n, str) for n in x))
    for rules, mesh_cfg in MESHES.items():
      mesh = create_mesh(mesh_cfg)
      lines.append(f"{preset} / {rules} / mesh {mesh_sizes(mesh)}")
      lines += _lines("param", state, param_names, param_shardings(state, mesh, rules))
      lines += _lines("cache", cache, cache_names, cache_shardings(cache, mesh, rules))
  return "\n".join(lines) + "\n"


def test_partition_specs_match_the_snapshot():
  got = snapshot()
  if os.environ.get("LCJAX_UPDATE_GOLDEN") == "1":
    with open(GOLDEN, "w") as f:
      f.write(got)
  print(got)
  with open(GOLDEN) as f:
    want = f.read()
  assert got == want, "partition specs changed; review and regenerate with LCJAX_UPDATE_GOLDEN=1 (see docstring)"


def test_smollm2_preset_matches_the_bundled_file():
  from lcjax.checkpoint import gguf
  from lcjax.errors import CheckpointError
  from lcjax.models.bundled import bundled_path

  try:
    path = bundled_path()
  except CheckpointError as e:
    pytest.skip(str(e))
  cfg = gguf.config_from_gguf(gguf.read_gguf(path))
  shape_fields = ("vocab_size", "dim", "num_layers", "num_heads", "num_kv_heads", "head_dim", "mlp_dim",
                  "tie_embeddings")
  assert {k: getattr(cfg, k) for k in shape_fields} == {k: getattr(SMOLLM2_135M, k) for k in shape_fields}
  assert dataclasses.replace(cfg.rope) == SMOLLM2_135M.rope
