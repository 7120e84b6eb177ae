"""Drafters behind the `speculative.Drafter` interface, and their registry.

  prompt_lookup   n-gram match against the context (prompt + generated): the tokens that followed the most recent
                  earlier occurrence(s) of the last n tokens (Saxena 2023, "prompt lookup decoding"); `branches`
                  > 1 drafts the continuations of that many matches as a tree. Deterministic, no parameters.
  model           any smaller lcjax model with the target's tokenizer, drafting a chain with its own dense KV cache
                  (argmax when greedy, sampled from its filtered distribution when sampling).
  longspec        `lcjax.models.longspec` (registered there).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lcjax.errors import ConfigError
from lcjax.inference.generate import Generator, _round_up
from lcjax.inference.sampling import SamplingConfig
from lcjax.inference.spec_tree import DraftTree, chain_parents, sampling_probs
from lcjax.inference.speculative import DraftContext, Drafter, check_gamma
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
    b = ctx.lengths.shape[0]
    prev = jnp.take_along_axis(ctx.history, jnp.maximum(ctx.lengths - 1, 0)[:, None], axis=1)[:, 0]
    _, cache = model(prev[:, None], jnp.maximum(ctx.lengths - 1, 0)[:, None], cache=dstate)
    greedy = sampling.temperature == 0.0

    def step(carry, j):
      cache, token = carry
      logits, cache = model(token[:, None], (ctx.lengths + j)[:, None], cache=cache)
      logits = logits[:, 0]
      if greedy:
        nxt, probs = jnp.argmax(logits, -1).astype(jnp.int32), jnp.zeros((b, 0), jnp.float32)
      else:
        probs = sampling_probs(logits, sampling)
        nxt = jax.random.categorical(jax.random.fold_in(key, j), jnp.log(probs), axis=-1).astype(jnp.int32)
      return (cache, nxt), (nxt, probs)

    (cache, _), (drafted, probs) = jax.lax.scan(step, (cache, ctx.last), jnp.arange(self.gamma))
    tokens = jnp.concatenate([ctx.last[:, None], drafted.T], axis=1)
    tree_probs = None
    if not greedy:  # node i's children were drawn from probs[i]; the leaf has none
      probs = jnp.swapaxes(probs, 0, 1)
      tree_probs = jnp.concatenate([probs, jnp.zeros_like(probs[:, :1])], axis=1)
    cache = dataclasses.replace(cache, lengths=ctx.lengths)
    return DraftTree(tokens, chain_parents(b, self.gamma), tree_probs), cache
