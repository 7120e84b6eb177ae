"""One process of the multi-process test (2 processes x 4 CPU devices on loopback, gloo collectives).

  python tests/sharding/multiprocess_worker.py --coordinator 127.0.0.1:PORT --num-processes 2 --process-id I \
      --local-devices 4 --out result.json
Also imported by the test for the single-process run of the same step (`train_once`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from lcjax.sharding import distributed  # noqa: E402


def train_once(mesh) -> dict:
  """One sharded optimizer step of the tiny decoder (fsdp rules) on a fixed batch: loss and a param checksum."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from flax import nnx

  from lcjax.models.build import abstract_model, init_model
  from lcjax.sharding import partition as part
  from lcjax.sharding import steps
  from tests.tiny import TINY

  rules = "fsdp"
  graphdef, abstract = abstract_model(TINY)
  ps = part.param_shardings(abstract, mesh, rules)
  params = jax.jit(lambda: nnx.split(init_model(TINY))[1], out_shardings=ps)()
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, TINY.vocab_size, (8, 17)).astype(np.int32)
  batch = {"tokens": tokens[:, :-1], "targets": tokens[:, 1:], "loss_mask": np.ones((8, 16), np.float32)}
  bs = part.batch_shardings(batch, mesh, rules)
  optimizer = optax.sgd(0.5, momentum=0.9)
  opt_state, os_ = steps.init_optimizer(optimizer, params, ps, mesh)
  step = steps.make_train_step(steps.llama_loss(graphdef), optimizer, mesh, rules, ps, os_, bs)
  params, opt_state, aux = step(params, opt_state, part.place(batch, bs))
  checksum = jax.jit(lambda p: sum(jnp.sum(x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(p)),
                     out_shardings=steps.replicated(mesh))(params)
  return {"loss": float(aux["loss"]), "checksum": float(checksum), "processes": jax.process_count(),
          "devices": len(jax.devices()), "local_devices": len(jax.local_devices())}


def main() -> None:
  parser = argparse.ArgumentParser()
  distributed.add_flags(parser)
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  distributed.initialize(distributed.from_flags(args))
  import jax

  from lcjax.config import MeshConfig
  from lcjax.sharding.mesh import create_mesh

  # data spans the two processes (DCN), fsdp stays inside each (ICI).
  result = train_once(create_mesh(MeshConfig(fsdp=4, dcn_data=2)))
  if jax.process_index() == 0:
    with open(args.out, "w") as f:
      json.dump(result, f)


if __name__ == "__main__":
  main()
