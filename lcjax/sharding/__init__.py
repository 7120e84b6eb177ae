"""Logical axis names, rule sets, meshes and activation constraints.

  axes.py         logical axis names; `axes.param` creates annotated params
  rules.py        named rule sets (fsdp, fsdp_tp, fsdp_cp, decode): logical name -> mesh axes
  mesh.py         meshes over (data, fsdp, context, tensor) from a MeshConfig, with -1 auto-fill and ICI/DCN split
  partition.py    use_sharding(mesh, rules), constrain(x, logical axes), shardings of params / caches / batches
  layout.py       token layouts for context parallelism (contiguous, zigzag, striped)
  steps.py        jitted sharded train / grad / prefill / decode step builders
  hdp.py          ByteScale Hybrid Data Parallelism: balance scheduler, packing, HDP steps
  distributed.py  multi-process start-up (jax.distributed.initialize from flags or env)
The context-parallel attention impls (ring, allgather_kv, hdp) live in lcjax/ops/attention_context.py.
"""

from lcjax.sharding.mesh import create_mesh, mesh_and_rules
from lcjax.sharding.partition import (batch_shardings, cache_shardings, constrain, param_shardings, place,
                                      use_sharding)
from lcjax.sharding.rules import RULE_SETS, Rules, get_rules

__all__ = ["RULE_SETS", "Rules", "batch_shardings", "cache_shardings", "constrain", "create_mesh", "get_rules",
           "mesh_and_rules", "param_shardings", "place", "use_sharding"]
