"""SpeContext (2025): a small distilled model's head-level attention picks the tokens the big model retrieves.

Each decode step first runs the small (retrieval) model on the new token; the attention probabilities of its
retrieval heads over its own cache, summed, rank the context tokens, and the big model's every layer attends to the
top-budget tokens (plus the most recent `local`). The retrieval heads are pruned offline to the heads whose top-k
best recall the big model's attention (`calibrate_heads`). Because the selection exists before the big model's
step, its KV can be fetched from a host tier ahead of use; only the difference from the previous step's selection
moves (elastic loading, counted by `moved`).

Here the small model is any model sharing the tokenizer; `truncated` builds one from the big model's first layers,
`lcjax.kvcache.specontext_distill` distils it (KD + attention alignment).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.kvcache.attend import Selection
from lcjax.kvcache.base import KV_METHODS, KVMethod
from lcjax.kvcache.dense import DenseLayerKV, KVCache
from lcjax.kvcache.select import as_mask, exclude, merge, range_items, topk_part


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ProbeLayerKV:
  """A dense layer cache that also keeps the last query (the retrieval model reads its attention from it).

  Attributes:
    k, v: [B, K, S, H].  q: [B, N, H] the latest query (after RoPE).
  """

  k: jax.Array
  v: jax.Array
  q: jax.Array

  def update(self, k, v, positions) -> "ProbeLayerKV":
    dense = DenseLayerKV(self.k, self.v).update(k, v, positions)
    return dataclasses.replace(self, k=dense.k, v=dense.v)

  def observe(self, q, positions) -> "ProbeLayerKV":
    return dataclasses.replace(self, q=q[:, -1])

  def attend(self, q, mask, **kwargs):
    return DenseLayerKV(self.k, self.v).attend(q, mask, **kwargs)


def init_probe_cache(cfg, batch: int, max_len: int, dtype=jnp.float32) -> KVCache:
  """An empty retrieval-model cache."""
  shape = (batch, cfg.num_kv_heads, max_len, cfg.head_dim)
  layers = tuple(ProbeLayerKV(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype),
                              jnp.zeros((batch, cfg.num_heads, cfg.head_dim), dtype)) for _ in range(cfg.num_layers))
  return KVCache(layers, jnp.zeros((batch,), jnp.int32))


def query_log_probs(q, k, lengths) -> jax.Array:
  """log softmax(q k^T / sqrt(H)) of some queries over the keys at positions < lengths.

  Args:
    q: [B, P, N, H] queries (after RoPE).  k: [B, K, S, H] keys (after RoPE).  lengths: [B, P] keys visible.
  Returns:
    [B, P, N, S] fp32 log-probabilities (hidden keys get about -1e30: finite, so KL gradients stay finite).
  """
  b, p, n, h = q.shape
  kh = k.shape[1]
  s = jnp.einsum("bpkgh,bksh->bpkgs", q.reshape(b, p, kh, n // kh, h).astype(jnp.float32),
                 k.astype(jnp.float32)).reshape(b, p, n, -1) / math.sqrt(h)
  s = jnp.where(jnp.arange(s.shape[-1]) < lengths[:, :, None, None], s, -1e30)
  return jax.nn.log_softmax(s, -1)


def head_probs(cache: KVCache, lengths) -> jax.Array:
  """Attention probabilities of every layer's last query: [L, B, N, S] over positions < lengths."""
  return jnp.stack([jnp.exp(query_log_probs(layer.q[:, None], layer.k, lengths[:, None]))[:, 0]
                    for layer in cache.layers])


@KV_METHODS.register("specontext")
@dataclasses.dataclass(frozen=True)
class SpeContext(KVMethod):
  """The big model's side: attends to the token selection the retrieval model installed (`install`)."""

  local: int = 16

  def init(self, spec):
    return {"indices": jnp.zeros((spec.batch, spec.num_kv_heads, spec.budget), jnp.int32),
            "counts": jnp.zeros((spec.batch, spec.num_kv_heads), jnp.int32)}

  def select(self, spec, index, q, k, lengths):
    return Selection(index["indices"], index["counts"], 1)

  def choose(self, spec, scores, lengths) -> Selection:
    """Top-budget tokens by retrieval score [B, S] plus the `local` most recent, for every kv head."""
    local = min(self.local, spec.budget)
    b = spec.batch
    recent = range_items((lengths - local)[:, None], local, jnp.zeros((b, 1), jnp.int32), lengths[:, None])
    scores = jnp.where(jnp.arange(scores.shape[-1]) < lengths[:, None], scores, -jnp.inf)[:, None]
    scores = exclude(scores, *recent)
    return merge([recent, topk_part(scores, spec.budget - local)], 1, spec.num_kv_heads)


def install(cache: KVCache, sel: Selection) -> tuple[KVCache, jax.Array]:
  """Puts a selection into every layer's index. Returns (cache, moved [B]: tokens not in the previous selection).

  Layers with their own `install` (host-tier working sets, `lcjax.memory.method_offload.ElasticLayerKV`) load the
  missing tokens there."""
  if hasattr(type(cache.layers[0]), "install"):
    return type(cache.layers[0]).install(cache, sel)
  old = cache.layers[0].index
  s = cache.max_len
  as_set = lambda idx, cnt: as_mask(idx, jnp.arange(idx.shape[-1]) < cnt[..., None], s)  # noqa: E731
  moved = jnp.sum(as_set(sel.indices, sel.counts) & ~as_set(old["indices"], old["counts"]), axis=(1, 2))
  layers = tuple(dataclasses.replace(l, index={"indices": sel.indices, "counts": sel.counts}) for l in cache.layers)
  return dataclasses.replace(cache, layers=layers), moved // cache.layers[0].spec.num_kv_heads


def retrieval_scores(small_cache: KVCache, heads: tuple[tuple[int, int], ...], lengths) -> jax.Array:
  """Summed attention probabilities [B, S] of the retrieval heads ((layer, head) pairs) of the small model."""
  probs = head_probs(KVCache(tuple(small_cache.layers[l] for l in sorted({l for l, _ in heads})), lengths), lengths)
  order = {l: i for i, l in enumerate(sorted({l for l, _ in heads}))}
  return sum(probs[order[l], :, h] for l, h in heads)


def calibrate_heads(big_probs, small_probs, budget: int, keep: int) -> tuple[tuple[int, int], ...]:
  """Prunes the retrieval heads to the `keep` whose top-budget tokens best recall the big model's.

  Args:
    big_probs: [Lb, B, Nb, S] the big model's attention at a calibration token.  small_probs: [Ls, B, Ns, S].
    budget: tokens selected.  keep: heads kept.
  Returns:
    ((layer, head), ...) best first.
  """
  target = np.asarray(big_probs).mean((0, 2))                                  # [B, S]
  sp = np.asarray(small_probs)
  recall = {(l, h): topk_recall(target, sp[l, :, h], budget) for l in range(sp.shape[0]) for h in range(sp.shape[2])}
  return tuple(sorted(recall, key=lambda k: -recall[k])[:keep])


def topk_recall(target, scores, k: int) -> float:
  """Mean over rows of |top-k(target) & top-k(scores)| / k.  target, scores: [R, S] (any leading shape)."""
  target, scores = (np.asarray(x).reshape(-1, np.shape(x)[-1]) for x in (target, scores))
  rows = np.arange(len(target))[:, None]
  hits = np.zeros(target.shape, np.int32)
  hits[rows, np.argsort(-target, -1)[:, :k]] += 1
  hits[rows, np.argsort(-scores, -1)[:, :k]] += 1
  return float(np.mean(np.sum(hits == 2, -1) / k))


def truncated(cfg, state, num_layers: int):
  """The big model's first `num_layers` layers as a small retrieval model: (cfg, graphdef, state)."""
  from lcjax.models.build import state_from_params

  small = cfg.replace(num_layers=num_layers)
  params = nnx.to_pure_dict(state)
  params = {**params, "layers": {i: params["layers"][i] for i in range(num_layers)}}
  graphdef, small_state = state_from_params(small, params, f"first {num_layers} layers")
  return small, graphdef, small_state


def _step(big, small, heads, cache, small_cache, token):
  """One SpeContext step: retrieval model on the token -> selection installed in the big cache -> big model."""
  layer0 = cache.layers[0]
  pos = cache.lengths[:, None]
  _, small_cache = small(token[:, None], pos, cache=small_cache)
  scores = retrieval_scores(small_cache, heads, cache.lengths + 1)
  cache, moved = install(cache, layer0.method.choose(layer0.spec, scores, cache.lengths + 1))
  logits, cache = big(token[:, None], pos, cache=cache)
  grow = lambda c: dataclasses.replace(c, lengths=c.lengths + 1)  # noqa: E731
  return grow(cache), grow(small_cache), logits[:, 0], moved


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3), donate_argnames=("cache", "small_cache"))
def _decode_spec(graphdef, small_graphdef, heads, steps, state, small_state, first, tokens, cache, small_cache):
  big, small = nnx.merge(graphdef, state), nnx.merge(small_graphdef, small_state)

  def body(carry, forced):
    cache, small_cache, token = carry
    cache, small_cache, logits, moved = _step(big, small, heads, cache, small_cache, token)
    nxt = jnp.argmax(logits, -1).astype(jnp.int32) if tokens is None else forced
    loaded = getattr(cache.layers[0], "loaded", None)  # a host-tier working set's transfer size
    return (cache, small_cache, nxt), (token, logits, moved, moved if loaded is None else jnp.broadcast_to(
        loaded, moved.shape))

  xs = None if tokens is None else jnp.swapaxes(tokens, 0, 1)[1:]
  xs = xs if tokens is None else jnp.concatenate([xs, xs[-1:]], 0)
  _, (fed, logits, moved, loaded) = jax.lax.scan(body, (cache, small_cache, first), xs, length=steps)
  return fed, logits, moved, loaded


def forced_logits_specontext(graphdef, small_graphdef, heads, state, small_state, tokens, cache, small_cache):
  """Teacher-forced decode with SpeContext selections: ([M, B, V] logits, [M, B] tokens moved per step).

  `cache` is a prefilled SpeContext method cache, `small_cache` the retrieval model's prefilled probe cache.
  """
  tokens = jnp.asarray(tokens, jnp.int32)
  _, logits, moved, _ = _decode_spec(graphdef, small_graphdef, tuple(heads), tokens.shape[1], state, small_state,
                                     tokens[:, 0], tokens, cache, small_cache)
  return np.asarray(logits), np.asarray(moved)


def greedy_specontext(graphdef, small_graphdef, heads, state, small_state, logits, steps: int, cache, small_cache):
  """Greedy decoding of `steps` tokens after a prefill whose next-token logits [B, V] are given.

  Returns:
    (tokens [B, steps] np.int32, moved [steps, B]).
  """
  first = jnp.argmax(logits, -1).astype(jnp.int32)
  fed, _, moved, _ = _decode_spec(graphdef, small_graphdef, tuple(heads), steps, state, small_state, first, None,
                                  cache, small_cache)
  return np.asarray(fed).T, np.asarray(moved)


def probe_prefill(cfg, graphdef, state, prompt, max_len: int, pad_to: int = 64) -> tuple[jax.Array, KVCache]:
  """Prefill of one prompt into a probe cache (keys, values and the last query of every layer)."""
  from lcjax.inference.generate import Generator

  return Generator(cfg, graphdef, pad_to=pad_to).prefill(state, [prompt], init_probe_cache(cfg, 1, max_len))


def calibrate_on(big, small, prompt, budget: int, keep: int):
  """Retrieval heads of `small` chosen on a calibration prompt (offline): both models prefilled, the big model's
  attention at the last token is the target. big, small: (cfg, graphdef, state). Returns ((layer, head), ...)."""
  n = len(prompt)
  pad = -(-n // 64) * 64
  lengths = jnp.array([n], jnp.int32)
  probs = []
  for cfg, graphdef, state in (big, small):
    _, cache = probe_prefill(cfg, graphdef, state, prompt[:pad], pad, pad_to=64)
    probs.append(head_probs(cache, lengths) if n == pad else None)
  if probs[0] is None:
    raise ValueError(f"calibration prompts must be a multiple of 64 tokens long, got {n}")
  return calibrate_heads(probs[0], probs[1], budget, keep)


@dataclasses.dataclass
class SpeContextRunner:
  """SpeContext end to end for one model: retrieval model, calibrated heads, prefill and decode.

  Args:
    cfg, graphdef, state: the big model.  method: a `SpeContext` method (budget, local).
    small: (cfg, graphdef, state) of the retrieval model; None: the big model's first `small_layers` layers.
    heads: retrieval heads; None: calibrated on `calib_prompt` (keep `keep_heads`).
  """

  cfg: object
  graphdef: object
  state: object
  method: SpeContext
  small: tuple | None = None
  small_layers: int = 4
  heads: tuple | None = None
  keep_heads: int = 4
  calib_prompt: list | None = None

  def __post_init__(self):
    if self.small is None:
      self.small = truncated(self.cfg, self.state, self.small_layers)
    if self.heads is None:
      if not self.calib_prompt:
        raise ValueError("SpeContextRunner needs retrieval heads or a calibration prompt to choose them")
      budget = max(1, len(self.calib_prompt) // 8)
      self.heads = calibrate_on((self.cfg, self.graphdef, self.state), self.small, self.calib_prompt, budget,
                                self.keep_heads)

  def prefill(self, prompt, max_len: int):
    """(next-token logits [1, V], big cache, retrieval cache) after the prompt."""
    from lcjax.inference.kv_method import MethodGenerator

    gen = MethodGenerator(self.cfg, self.graphdef, self.method)
    gen.context = len(prompt)
    logits, cache = gen.prefill(self.state, [prompt], gen.init_cache(1, max_len))
    _, small_cache = probe_prefill(*self.small, prompt, max_len)
    return logits, cache, small_cache

  def generate(self, prompt, max_new_tokens: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy tokens [1, M] and tokens moved per step [M, 1]."""
    logits, cache, small_cache = self.prefill(prompt, max_len)
    return greedy_specontext(self.graphdef, self.small[1], self.heads, self.state, self.small[2], logits,
                             max_new_tokens, cache, small_cache)

  def forced(self, prompt, tokens, max_len: int):
    """Teacher-forced logits [M, 1, V] along tokens [1, M], and tokens moved per step."""
    _, cache, small_cache = self.prefill(prompt, max_len)
    return forced_logits_specontext(self.graphdef, self.small[1], self.heads, self.state, self.small[2], tokens,
                                    cache, small_cache)
