"""Drafters behind the `speculative.Drafter` interface, and their registry.

  prompt_lookup   n-gram match against the context (prompt + generated): the tokens that followed the most recent
                  earlier occurrence(s) of the last n tokens (Saxena 2023, "prompt lookup decoding"); `branches`
                  > 1 drafts the continuations of that many matches as a tree. Deterministic, no parameters.
  model           any smaller lcjax model with the target's tokenizer, drafting a chain with its own dense KV cache
                  (argmax when greedy, sampled from its filtered distribution when sampling).
  longspec        LongSpec's one-layer draft (`lcjax.models.longspec`): sliding-window ring cache + cross-attention
                  to the target's last-layer cache.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.errors import ConfigError
from lcjax.inference.generate import Generator, _round_up
from lcjax.inference.sampling import SamplingConfig
from lcjax.inference.spec_tree import DraftTree, chain_parents, sampling_probs
from lcjax.inference.speculative import DraftContext, Drafter, check_gamma
from lcjax.models.longspec import RingKV
from lcjax.registry import Registry

DRAFTERS: Registry[type] = Registry("drafter")


@DRAFTERS.register("prompt_lookup")
class PromptLookup(Drafter):
  """Drafts the continuation of the most recent earlier match of the context's last n tokens (n from max_ngram
  down to min_ngram: longer matches first, then more recent ones).

  Args:
    gamma: draft tokens per branch.  max_ngram, min_ngram: match lengths tried.  branches: matches drafted (the
      tree has 1 + branches * gamma nodes; a chain when 1).
  """

  name = "prompt_lookup"

  def __init__(self, gamma: int = 4, *, max_ngram: int = 3, min_ngram: int = 1, branches: int = 1):
    self.gamma = check_gamma(gamma)
    if not 1 <= min_ngram <= max_ngram:
      raise ConfigError(f"prompt lookup needs 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
    if branches < 1:
      raise ConfigError(f"prompt lookup branches must be >= 1, got {branches}")
    self.max_ngram, self.min_ngram, self.branches = max_ngram, min_ngram, branches
    self.num_nodes, self.max_depth = 1 + branches * self.gamma, self.gamma

  def match_ends(self, history, lengths):
    """[B, branches] end positions e < length of the best earlier matches of the last n tokens (-1: none)."""
    b, s = history.shape
    pos = jnp.arange(s)[None]
    key_at = lambda i: jnp.take_along_axis(history, jnp.clip(lengths - i, 0)[:, None], axis=1)  # noqa: E731
    score = jnp.full((b, s), -1, jnp.int32)
    same = jnp.ones((b, s), bool)
    for n in range(1, self.max_ngram + 1):            # same[e]: history[e - i] == history[length - i], i < n
      same &= (jnp.roll(history, n - 1, axis=1) == key_at(n - 1)) & (pos >= n - 1)
      if n >= self.min_ngram:
        ok = same & (pos < lengths[:, None]) & (lengths[:, None] - n + 1 >= 0)
        score = jnp.where(ok, n * s + pos, score)
    top = jax.lax.top_k(score, self.branches)[0]
    return jnp.where(top >= 0, top % s, -1)

  def draft(self, params, dstate, ctx: DraftContext, key, sampling: SamplingConfig):
    b, s = ctx.history.shape
    ends = self.match_ends(ctx.history, ctx.lengths)                                    # [B, branches]
    ends = jnp.where(ends >= 0, ends, ctx.lengths[:, None])                             # no match: any tokens
    idx = jnp.clip(ends[:, :, None] + 1 + jnp.arange(self.gamma)[None, None], 0, s - 1)
    cont = jnp.take_along_axis(ctx.history, idx.reshape(b, -1), axis=1)
    tokens = jnp.concatenate([ctx.last[:, None], cont], axis=1).astype(jnp.int32)
    return DraftTree(tokens, chain_parents(b, self.gamma, self.branches)), dstate


@DRAFTERS.register("model")
class ModelDrafter(Drafter):
  """A smaller lcjax model drafting gamma tokens as a chain.

  Its dense cache mirrors the target's committed positions; each draft re-feeds the token before the last
  verified one (its key/value is missing when the whole previous chain was accepted) and the last verified token,
  then gamma - 1 of its own tokens: gamma + 1 small-model decode steps per verify step.

  Args:
    cfg, graphdef: the draft model (nnx.split).  gamma: draft tokens.
  """

  name = "model"

  def __init__(self, cfg, graphdef, gamma: int = 4):
    self.cfg, self.graphdef = cfg, graphdef
    self.gamma = check_gamma(gamma)
    self.vocab_size = cfg.vocab_size
    self.num_nodes, self.max_depth = 1 + self.gamma, self.gamma
    self._gen = Generator(cfg, graphdef, pad_to=16)

  def start(self, params, prompts, max_len):
    cache = self._gen.init_cache(len(prompts), _round_up(max_len, self._gen.pad_to))
    return self._gen.prefill(params, prompts, cache)[1]

  def draft(self, params, dstate, ctx: DraftContext, key, sampling: SamplingConfig):
    model = nnx.merge(self.graphdef, params)

    def step(cache, tokens, positions):
      logits, cache = model(tokens[:, None], positions[:, None], cache=cache)
      return logits[:, 0], cache

    tree, cache = draft_chain(step, dstate, ctx, key, sampling, self.gamma)
    return tree, dataclasses.replace(cache, lengths=ctx.lengths)


def draft_chain(step, state, ctx: DraftContext, key, sampling: SamplingConfig, gamma: int):
  """A chain of gamma tokens from an autoregressive drafter `step(state, tokens [B], positions [B]) -> (logits
  [B, V], state)`: re-feeds the token before the last verified one (its cache entry is missing when the whole
  previous chain was accepted), then the last verified token and gamma - 1 drafted ones; argmax when greedy, else
  sampled from the filtered draft distribution (returned as the tree's probs)."""
  b = ctx.lengths.shape[0]
  before = jnp.maximum(ctx.lengths - 1, 0)
  _, state = step(state, jnp.take_along_axis(ctx.history, before[:, None], axis=1)[:, 0], before)
  greedy = sampling.temperature == 0.0

  def one(carry, j):
    state, token = carry
    logits, state = step(state, token, ctx.lengths + j)
    if greedy:
      nxt, probs = jnp.argmax(logits, -1).astype(jnp.int32), jnp.zeros((b, 0), jnp.float32)
    else:
      probs = sampling_probs(logits, sampling)
      nxt = jax.random.categorical(jax.random.fold_in(key, j), jnp.log(probs), axis=-1).astype(jnp.int32)
    return (state, nxt), (nxt, probs)

  (state, _), (drafted, probs) = jax.lax.scan(one, (state, ctx.last), jnp.arange(gamma))
  tokens = jnp.concatenate([ctx.last[:, None], drafted.T], axis=1)
  tree_probs = None
  if not greedy:  # node i's children were drawn from probs[i]; the leaf has none
    probs = jnp.swapaxes(probs, 0, 1)
    tree_probs = jnp.concatenate([probs, jnp.zeros_like(probs[:, :1])], axis=1)
  return DraftTree(tokens, chain_parents(b, gamma), tree_probs), state


@DRAFTERS.register("longspec")
class LongSpecDrafter(Drafter):
  """LongSpec's one-layer draft (`lcjax.models.longspec`) drafting a chain: its sliding-window self-attention in a
  ring buffer of window + gamma + 1 slots (constant memory), cross-attention over the target's committed
  last-layer cache. Params: {"draft": draft state, "target": target state} (embedding and head are the target's).

  Args:
    target_cfg, target_graphdef: the target.  draft_graphdef: `nnx.split(LongSpecDraft(...))[0]`.
    window: the draft's W.  gamma: draft tokens.
  """

  name = "longspec"

  def __init__(self, target_cfg, target_graphdef, draft_graphdef, window: int, gamma: int = 4,
               tree_shape: tuple[int, ...] | None = None):
    self.cfg, self.target_graphdef, self.draft_graphdef = target_cfg, target_graphdef, draft_graphdef
    self.window, self.gamma = window, check_gamma(gamma)
    self.tree_shape = None if tree_shape is None else tuple(int(w) for w in tree_shape)
    if self.tree_shape is not None and (not self.tree_shape or min(self.tree_shape) < 1):
      raise ConfigError(f"LongSpec tree_shape needs >= 1 candidates per depth, got {tree_shape!r}")
    self.vocab_size = target_cfg.vocab_size
    if self.tree_shape is None:
      self.num_nodes, self.max_depth = 1 + self.gamma, self.gamma
    else:
      self.num_nodes, self.max_depth = 1 + sum(self.tree_shape), len(self.tree_shape)
    self.slots = window + self.max_depth + 1
    self._start = jax.jit(self._start_fn)

  def _start_fn(self, params, tokens, lengths):
    draft = nnx.merge(self.draft_graphdef, params["draft"])
    target = nnx.merge(self.target_graphdef, params["target"])
    b, t = tokens.shape
    positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    k, v = draft.ring_keys(target, tokens, positions)
    ring = RingKV.zeros(b, self.slots, self.window, self.cfg.num_kv_heads, self.cfg.head_dim, k.dtype)
    keep = (positions < lengths[:, None]) & (positions >= lengths[:, None] - self.window)
    return ring.update(k, v, positions, keep)

  def start(self, params, prompts, max_len):
    t = _round_up(max(len(p) for p in prompts), 16)
    tokens = np.zeros((len(prompts), t), np.int32)
    for i, p in enumerate(prompts):
      tokens[i, :len(p)] = p
    return self._start(params, jnp.asarray(tokens), jnp.asarray([len(p) for p in prompts], jnp.int32))

  def draft(self, params, dstate, ctx: DraftContext, key, sampling: SamplingConfig):
    draft = nnx.merge(self.draft_graphdef, params["draft"])
    target = nnx.merge(self.target_graphdef, params["target"])
    cross = ctx.cache.layers[-1]

    def step(cache, tokens, positions):  # tokens, positions [B] -> logits [B, V]; [B, T] -> [B, T, V]
      one = tokens.ndim == 1
      tokens, positions = (tokens[:, None], positions[:, None]) if one else (tokens, positions)
      logits, cache = draft.step(target, tokens, positions, cache, cross.k, cross.v, ctx.lengths)
      return (logits[:, 0] if one else logits), cache

    if self.tree_shape is None:
      return draft_chain(step, dstate, ctx, key, sampling, self.gamma)
    return self._draft_tree(step, dstate, ctx)

  def _draft_tree(self, step, ring, ctx: DraftContext):
    """LongSpec's beam tree: depth 1 = the draft's top-w1 after the root; depth d > 1 = the top-w_d of (parent's
    cumulative log-prob + child log-prob) over every parent x vocabulary. Each depth runs as one draft pass whose
    self-attention is the ring (verified context) plus the tree buffer under the ancestor mask."""
    from lcjax.models.longspec import DraftTreeKV

    b, n = ctx.lengths.shape[0], ctx.lengths
    before = jnp.maximum(n - 1, 0)
    _, ring = step(ring, jnp.take_along_axis(ctx.history, before[:, None], axis=1)[:, 0], before)
    logits, ring = step(ring, ctx.last, n)
    cum = jax.nn.log_softmax(logits.astype(jnp.float32), -1)[:, None]                    # [B, 1, V]
    total, v = sum(self.tree_shape), cum.shape[-1]
    kh, h = self.cfg.num_kv_heads, self.cfg.head_dim
    buf_k = buf_v = jnp.zeros((b, total, kh, h), ring.k.dtype)
    visible = jnp.zeros((b, total, total), bool)
    tokens, parents = [ctx.last[:, None]], [jnp.full((b, 1), -1, jnp.int32)]
    prev_nodes, off = jnp.zeros((b, 1), jnp.int32), 0
    for d, width in enumerate(self.tree_shape):
      vals, idx = jax.lax.top_k(cum.reshape(b, -1), width)
      tok, par = (idx % v).astype(jnp.int32), jnp.take_along_axis(prev_nodes, idx // v, axis=1)
      own = jnp.arange(off, off + width)
      par_rows = jnp.take_along_axis(visible, jnp.clip(par - 1, 0)[:, :, None], axis=1) & (par > 0)[:, :, None]
      rows = par_rows | (jnp.arange(total)[None, None] == own[None, :, None])
      visible = visible.at[:, off:off + width].set(rows)
      tokens.append(tok)
      parents.append(par)
      if d + 1 < len(self.tree_shape):
        cache = DraftTreeKV(ring, buf_k, buf_v, rows, n, off)
        pos = jnp.broadcast_to((n + d + 1)[:, None], (b, width))
        logits, cache = step(cache, tok, pos)
        buf_k, buf_v = cache.buf_k, cache.buf_v
        cum = vals[:, :, None] + jax.nn.log_softmax(logits.astype(jnp.float32), -1)
      prev_nodes, off = jnp.broadcast_to(1 + own[None], (b, width)).astype(jnp.int32), off + width
    return DraftTree(jnp.concatenate(tokens, 1), jnp.concatenate(parents, 1)), ring


def drafter_from_spec(spec: str, gamma: int, target, tree_shape: tuple[int, ...] | None = None):
  """A drafter and its params from a CLI spec: "prompt_lookup", "model:PATH" (any model `load_pretrained`
  reads, sharing the target's tokenizer) or "longspec:DIR" (a draft saved by `models.longspec.save_draft`).

  Args:
    spec: the spec.  gamma: draft tokens.  target: the target's `Pretrained` (cfg, graphdef, state).
    tree_shape: LongSpec only: candidates per depth of a beam tree (None: a chain of gamma).
  Returns:
    (drafter, draft params).
  Raises:
    ConfigError: an unknown drafter name.
  """
  name, _, arg = spec.partition(":")
  if name == "prompt_lookup":
    return PromptLookup(gamma), None
  if name == "model" and arg:
    from lcjax.checkpoint import load_pretrained

    small = load_pretrained(arg, dtype=target.cfg.dtype)
    return ModelDrafter(small.cfg, small.graphdef, gamma), small.state
  if name == "longspec" and arg:
    from lcjax.models.longspec import load_draft

    graphdef, state, window = load_draft(arg, target.cfg)
    drafter = LongSpecDrafter(target.cfg, target.graphdef, graphdef, window, gamma, tree_shape=tree_shape)
    return drafter, {"draft": state, "target": target.state}
  raise ConfigError(f"unknown drafter spec {spec!r}; accepted: prompt_lookup, model:PATH, longspec:DIR")
