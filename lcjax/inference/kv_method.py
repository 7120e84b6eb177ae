"""Generation with a KV method, and the fidelity measures against dense decoding.

  MethodGenerator(cfg, graphdef, method)    a `Generator` whose cache is a KV method's (budget resolved against the
                                            longest prompt); the index is built once after prefill
  forced_logits(...)                        next-token logits along a given continuation (teacher forcing)
  fidelity(dense_logits, method_logits, tokens) -> KL(dense || method) and greedy agreement
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.inference.generate import Generator
from lcjax.kvcache.base import KVMethod, build_index, init_method_cache
from lcjax.kvcache.dense import KVCache


class MethodGenerator(Generator):
  """`Generator` over a KV method's cache.

  Args:
    cfg, graphdef: the model.  method: a `KVMethod` (e.g. `make_method("retrolm", budget=0.25)`).
    **kwargs: as `Generator` (cache_dtype, pad_to, prefill_chunk).
  """

  def __init__(self, cfg, graphdef, method: KVMethod, **kwargs):
    super().__init__(cfg, graphdef, **kwargs)
    self.method = method
    self.context: int | None = None

  def init_cache(self, batch: int, max_len: int, context: int | None = None) -> KVCache:
    """An empty method cache; the budget is relative to `context` (default: the last prompt length seen)."""
    return init_method_cache(self.cfg, self.method, batch, max_len, context or self.context or max_len,
                             self.cache_dtype)

  def prefill(self, state, prompts, cache):
    """`Generator.prefill`, then the method's index built from the filled cache."""
    logits, cache = super().prefill(state, prompts, cache)
    return logits, build_index(cache)

  def generate(self, state, prompts, **kwargs):
    self.context = max(len(p) for p in prompts)
    return super().generate(state, prompts, **kwargs)


@functools.partial(jax.jit, static_argnums=(0,), donate_argnames=("cache",))
def _forced(graphdef, state, tokens, cache):
  model = nnx.merge(graphdef, state)

  def step(cache, token):
    logits, cache = model(token[:, None], cache.lengths[:, None], cache=cache)
    return dataclasses.replace(cache, lengths=cache.lengths + 1), logits[:, 0]

  cache, logits = jax.lax.scan(step, cache, jnp.swapaxes(tokens, 0, 1))
  return logits, cache


def forced_logits(graphdef, state, cache: KVCache, tokens) -> np.ndarray:
  """Next-token logits while feeding `tokens` [B, M] one by one after a prefilled cache.

  Returns:
    [M, B, V] float32: row i is the distribution after tokens[:, :i+1] (fed at positions lengths + i).
  """
  logits, _ = _forced(graphdef, state, jnp.asarray(tokens, jnp.int32), cache)
  return np.asarray(logits)


def fidelity(dense_logits, method_logits, dense_tokens) -> dict:
  """KL(dense || method) per step (mean, max) and greedy agreement.

  Args:
    dense_logits, method_logits: [M, B, V] next-token logits at the same prefixes.
    dense_tokens: [M, B] the dense greedy tokens (argmax of dense_logits).
  Returns:
    {"kl": mean nats, "kl_max": worst step, "agreement": fraction of steps whose method argmax is the dense token}.
  """
  lp = jax.nn.log_softmax(jnp.asarray(dense_logits, jnp.float32), -1)
  lq = jax.nn.log_softmax(jnp.asarray(method_logits, jnp.float32), -1)
  kl = jnp.sum(jnp.exp(lp) * (lp - lq), -1)
  agree = jnp.argmax(lq, -1) == jnp.asarray(dense_tokens)
  return {"kl": float(kl.mean()), "kl_max": float(kl.max()), "agreement": float(agree.mean())}
