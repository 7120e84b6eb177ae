"""Generation with a KV method, and the fidelity measures against dense decoding.

  MethodGenerator(cfg, graphdef, method)    a `Generator` whose cache is a KV method's (budget resolved against the
                                            longest prompt); the index is built once after prefill
  forced_logits(...)                        next-token logits along a given continuation (teacher forcing)
  fidelity(dense_logits, method_logits, tokens) -> KL(dense || method) and greedy agreement
"""

from __future__ import annotations

import dataclasses
import time

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
    trained_len: the model's trained context when cfg.max_seq_len was raised past it (LongHeads' per-head window;
      None: cfg.max_seq_len).
    **kwargs: as `Generator` (cache_dtype, pad_to, prefill_chunk).
  """

  def __init__(self, cfg, graphdef, method: KVMethod, trained_len: int | None = None, **kwargs):
    super().__init__(cfg, graphdef, **kwargs)
    self.method = method
    self.trained_len = trained_len
    self.context: int | None = None

  def init_cache(self, batch: int, max_len: int, context: int | None = None) -> KVCache:
    """An empty method cache; the budget is relative to `context` (default: the last prompt length seen)."""
    return init_method_cache(self.cfg, self.method, batch, max_len, context or self.context or max_len,
                             self.cache_dtype, self.trained_len)

  def prefill(self, state, prompts, cache):
    """`Generator.prefill`, then the method's index built from the filled cache."""
    logits, cache = super().prefill(state, prompts, cache)
    return logits, build_index(cache)

  def generate(self, state, prompts, **kwargs):
    self.context = max(len(p) for p in prompts)
    return super().generate(state, prompts, **kwargs)


def _scan(graphdef, steps, state, first, tokens, cache):
  """Feeds `first` then, per step, the given token (teacher forcing) or the argmax (greedy, tokens=None)."""
  model = nnx.merge(graphdef, state)

  def step(carry, forced):
    cache, token = carry
    logits, cache = model(token[:, None], cache.lengths[:, None], cache=cache)
    cache = dataclasses.replace(cache, lengths=cache.lengths + 1)
    nxt = jnp.argmax(logits[:, 0], -1).astype(jnp.int32) if forced is None else forced
    return (cache, nxt), (token, logits[:, 0])

  xs = None if tokens is None else jnp.concatenate([jnp.swapaxes(tokens, 0, 1)[1:], tokens.T[-1:]], 0)
  _, (fed, logits) = jax.lax.scan(step, (cache, first), xs, length=steps)
  return fed, logits


_scan_jit = jax.jit(_scan, static_argnums=(0, 1), donate_argnames=("cache",))


def decode_scan(graphdef, state, cache: KVCache, steps: int, *, first=None, tokens=None, timed: bool = False):
  """Greedy (tokens=None, starting from `first` [B]) or teacher-forced (tokens [B, M]) decoding over a prefilled
  cache, as one jitted scan.

  Returns:
    (fed tokens [B, M] np.int32, logits [M, B, V] np.float32: row i after feeding token i, seconds of the run
    excluding compilation when `timed`, else None).
  """
  if tokens is not None:
    tokens = jnp.asarray(tokens, jnp.int32)
    first = tokens[:, 0]
  args = (graphdef, steps, state, jnp.asarray(first, jnp.int32), tokens, cache)
  if not timed:
    fed, logits = _scan_jit(*args)
    return np.asarray(fed).T, np.asarray(logits), None
  compiled = jax.jit(_scan, static_argnums=(0, 1), donate_argnums=(5,)).lower(*args).compile()
  t0 = time.perf_counter()
  fed, logits = compiled(*args[2:])
  logits.block_until_ready()
  return np.asarray(fed).T, np.asarray(logits), time.perf_counter() - t0


def forced_logits(graphdef, state, cache: KVCache, tokens) -> np.ndarray:
  """Next-token logits while feeding `tokens` [B, M] one by one after a prefilled cache.

  Returns:
    [M, B, V] float32: row i is the distribution after tokens[:, :i+1] (fed at positions lengths + i).
  """
  return decode_scan(graphdef, state, cache, np.shape(tokens)[1], tokens=tokens)[1]


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
