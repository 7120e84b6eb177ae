"""Sharded train / prefill / decode steps on 8 CPU devices equal the single-device run (fp32)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lcjax.config import MeshConfig
from lcjax.kvcache.dense import init_dense_cache
from lcjax.models.build import init_model
from lcjax.sharding import partition as part
from lcjax.sharding import steps
from lcjax.sharding.layout import to_layout
from lcjax.sharding.mesh import create_mesh
from tests.tiny import TINY

B, T = 8, 32
RULE_SETS = [  # (rule set, mesh, attention impl, token layout)
    ("fsdp", MeshConfig(fsdp=8), "auto", None),
    ("fsdp_tp", MeshConfig(fsdp=4, tensor=2), "auto", None),
    ("fsdp_cp", MeshConfig(fsdp=2, context=4), "ring", "zigzag"),
    ("fsdp_cp", MeshConfig(fsdp=2, context=4), "allgather_kv", "striped"),
    ("decode", MeshConfig(data=2, fsdp=1, context=2, tensor=2), "auto", None),
]


@pytest.fixture(scope="module")
def setup():
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, TINY.vocab_size, (B, T + 1)).astype(np.int32)
  seg = np.zeros((B, T), np.int32)
  seg[:, T // 3:] = 1  # two documents per row
  batch = {"tokens": tokens[:, :-1], "targets": tokens[:, 1:], "segment_ids": seg,
           "loss_mask": (rng.random((B, T)) > 0.1).astype(np.float32)}
  graphdef, params = nnx.split(init_model(TINY))
  ref = jax.jit(jax.value_and_grad(steps.llama_loss(graphdef), has_aux=True))(params, batch)
  return batch, params, ref


def _close(got, want, rtol=1e-5):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    g, w = np.asarray(g), np.asarray(w)
    np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * np.max(np.abs(w)))


@pytest.mark.parametrize("rules,mesh_cfg,impl,layout", RULE_SETS, ids=[f"{r[0]}-{r[2]}" for r in RULE_SETS])
def test_grad_step_equals_single_device(setup, rules, mesh_cfg, impl, layout):
  batch, params, ((want_loss, _), want_grads) = setup
  mesh = create_mesh(mesh_cfg)
  graphdef, _ = nnx.split(init_model(TINY.replace(attention_impl=impl)))
  if layout:
    batch = to_layout(batch, mesh.shape["context"], layout)
  ps, bs = part.param_shardings(params, mesh, rules), part.batch_shardings(batch, mesh, rules)
  step = steps.make_grad_step(steps.llama_loss(graphdef), mesh, rules, ps, bs)
  loss, aux, grads = step(part.place(params, ps), part.place(batch, bs))
  np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-5)
  _close(grads, want_grads)
  assert float(aux["tokens"]) == float(np.sum(batch["loss_mask"]))
  for leaf, sharding in zip(jax.tree.leaves(grads), jax.tree.leaves(ps)):  # grads come back sharded like params
    assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim)


def test_train_step_with_optimizer_equals_single_device(setup):
  batch, params, _ = setup
  graphdef, _ = nnx.split(init_model(TINY))
  # SGD with momentum: linear in the grads (Adam's first step ~ sign(g) amplifies rounding of tiny grads).
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.5, momentum=0.9))
  loss_fn = steps.llama_loss(graphdef)

  def single(params, opt_state, batch):
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), loss

  want_params, want_loss = jax.jit(single)(params, optimizer.init(params), batch)
  mesh = create_mesh(MeshConfig(fsdp=4, tensor=2))
  ps, bs = part.param_shardings(params, mesh, "fsdp_tp"), part.batch_shardings(batch, mesh, "fsdp_tp")
  sharded = part.place(params, ps)
  opt_state, os_ = steps.init_optimizer(optimizer, sharded, ps, mesh)
  step = steps.make_train_step(loss_fn, optimizer, mesh, "fsdp_tp", ps, os_, bs)
  new_params, opt_state, aux = step(sharded, opt_state, part.place(batch, bs))
  np.testing.assert_allclose(float(aux["loss"]), float(want_loss), rtol=1e-5)
  _close(new_params, want_params)
  trace = opt_state[1][0].trace  # momentum keeps the params' shardings
  for leaf, sharding in zip(jax.tree.leaves(trace), jax.tree.leaves(ps)):
    assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim)


def test_prefill_and_decode_with_sharded_cache_equal_single_device():
  b, t, s = 4, 16, 32
  graphdef, params = nnx.split(init_model(TINY))
  tokens = jnp.asarray(np.random.default_rng(1).integers(0, TINY.vocab_size, (b, t)).astype(np.int32))
  positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  last = jnp.full((b,), t - 1, jnp.int32)

  def run(prefill, decode, params, cache):
    logits, cache = prefill(params, tokens, positions, last, cache)
    cache = dataclasses.replace(cache, lengths=jnp.full((b,), t, jnp.int32))
    out = [logits]
    for _ in range(3):
      logits, cache = decode(params, jnp.argmax(logits, -1)[:, None].astype(jnp.int32), cache)
      out.append(logits)
    return out, cache

  cache = init_dense_cache(TINY, b, s)
  mesh1 = create_mesh(MeshConfig(fsdp=1), devices=jax.devices()[:1])
  ps1, cs1 = part.param_shardings(params, mesh1, "decode"), part.cache_shardings(cache, mesh1, "decode")
  want, _ = run(steps.make_prefill_step(graphdef, mesh1, "decode", ps1, cs1),
                steps.make_decode_step(graphdef, mesh1, "decode", ps1, cs1), params, cache)
  mesh = create_mesh(MeshConfig(data=2, fsdp=1, context=2, tensor=2))
  ps, cs = part.param_shardings(params, mesh, "decode"), part.cache_shardings(cache, mesh, "decode")
  assert cs.layers[0].k.spec == jax.sharding.PartitionSpec("data", "tensor", "context")
  got, out_cache = run(steps.make_prefill_step(graphdef, mesh, "decode", ps, cs),
                       steps.make_decode_step(graphdef, mesh, "decode", ps, cs),
                       part.place(params, ps), part.place(init_dense_cache(TINY, b, s), cs))
  _close(got, want)
  assert out_cache.layers[0].k.sharding.is_equivalent_to(cs.layers[0].k, 4)
  np.testing.assert_array_equal(out_cache.lengths, np.full(b, t + 3))
