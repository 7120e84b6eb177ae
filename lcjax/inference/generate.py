"""Prefill and decode over a KV cache as jitted pure functions, and the batched generation loop.

  prefill(state, tokens [B, T], positions [B, T], last [B], cache) -> (logits [B, V], cache)
  decode_loop(state, first [B], cache, key) -> (tokens [B, M], logprobs [B, M], cache)   (a `lax.while_loop`,
                                          stops early when every row has hit a stop token; logprobs: fp32 log-prob
                                          of each sampled token under the sampling distribution, for RL)
Prompts of different lengths are right-padded; each row's cache positions are its own, so padding never leaks.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.config import ModelConfig
from lcjax.errors import ContextLengthError, ShapeError
from lcjax.inference.sampling import SamplingConfig, sample, sampled_logprobs
from lcjax.kvcache.dense import KVCache, init_dense_cache


def context_limit(cfg: ModelConfig) -> int | None:
  """Longest sequence the model may run: the trained context, times the RoPE factor when a scaling extends it
  (None for ABF, whose new base has no fixed limit)."""
  rope = cfg.rope
  if rope.scaling == "none":
    return cfg.max_seq_len
  if rope.scaling == "abf":
    return None
  return int((rope.original_context or cfg.max_seq_len) * rope.factor)


def check_context(cfg: ModelConfig, longest_prompt: int, max_new_tokens: int) -> None:
  """Raises `ContextLengthError` if prompt + generation does not fit the model's context."""
  limit = context_limit(cfg)
  need = longest_prompt + max_new_tokens
  if limit is not None and need > limit:
    hint = ("configure a RoPE scaling (e.g. rope.scaling='yarn', rope.factor=4) to run past the trained context"
            if cfg.rope.scaling == "none" else "raise rope.factor")
    raise ContextLengthError(f"prompt of {longest_prompt} tokens + {max_new_tokens} new tokens = {need} exceeds the "
                             f"model's context of {limit} tokens; {hint}")


def _round_up(x: int, m: int) -> int:
  return max(m, (x + m - 1) // m * m)


@dataclasses.dataclass
class GenerationResult:
  """Generated tokens per row (stop token excluded), why each row ended, timings, and the fp32 log-prob of each
  generated token under the sampling distribution, for RL: `logprobs[i]` has len(tokens[i]) entries, plus one for
  the stop token `stop_tokens[i]` when the row stopped (None when it ran to the length limit)."""

  tokens: list[list[int]]
  finish_reasons: list[str]
  prompt_tokens: int
  prefill_seconds: float
  decode_seconds: float
  decode_steps: int
  stop_tokens: list[int | None] = dataclasses.field(default_factory=list)
  logprobs: list[np.ndarray] | None = None

  @property
  def prefill_tokens_per_second(self) -> float:
    return self.prompt_tokens / max(self.prefill_seconds, 1e-9)

  @property
  def decode_tokens_per_second(self) -> float:
    """Decode steps per second times the batch (new tokens per second across rows)."""
    return self.decode_steps * len(self.tokens) / max(self.decode_seconds, 1e-9)


class Generator:
  """Jitted prefill and decode for one model; compiled functions are cached per shape bucket.

  Args:
    cfg: the model config.  graphdef: the NNX graphdef (from `nnx.split`).
    cache_dtype: dtype of the dense KV cache (default: the compute dtype).
    pad_to: prompt lengths and cache sizes are rounded up to a multiple of this (fewer recompiles).
    prefill_chunk: if set, prompts are prefilled in chunks of this many tokens (bounded activation memory).
  """

  def __init__(self, cfg: ModelConfig, graphdef, *, cache_dtype=None, pad_to: int = 64,
               prefill_chunk: int | None = None):
    self.cfg = cfg
    self.graphdef = graphdef
    self.cache_dtype = jnp.dtype(cache_dtype or cfg.dtype)
    self.pad_to = pad_to
    self.prefill_chunk = prefill_chunk
    self._prefill = jax.jit(self._prefill_fn, donate_argnames=("cache",))
    self._decode_loops = {}

  def _prefill_fn(self, state, tokens, positions, last, cache):
    model = nnx.merge(self.graphdef, state)
    logits, cache = model(tokens, positions, cache=cache, logits_at=last)
    return logits[:, 0], cache

  def init_cache(self, batch: int, max_len: int) -> KVCache:
    """An empty dense cache of `max_len` slots per row."""
    return init_dense_cache(self.cfg, batch, max_len, self.cache_dtype)

  def prefill(self, state, prompts: Sequence[Sequence[int]], cache: KVCache):
    """Runs the prompts through the model, filling the cache.

    Args:
      state: model params.  prompts: B lists of token ids (non-empty).  cache: an empty cache.
    Returns:
      (next-token logits [B, V] at each prompt's last token, filled cache with lengths set).
    """
    lengths = np.array([len(p) for p in prompts], np.int32)
    if lengths.min() < 1:
      raise ShapeError("every prompt needs at least one token")
    padded = _round_up(int(lengths.max()), self.pad_to)
    if padded > cache.max_len:
      raise ShapeError(f"prompts padded to {padded} tokens do not fit a cache of {cache.max_len} slots")
    tokens = np.zeros((len(prompts), padded), np.int32)
    for i, p in enumerate(prompts):
      tokens[i, :len(p)] = p
    chunk = self.prefill_chunk or padded
    cache = cache.with_prompt_lengths(jnp.asarray(lengths))
    logits = None
    for start in range(0, padded, chunk):
      stop = min(start + chunk, padded)
      positions = np.broadcast_to(np.arange(start, stop, dtype=np.int32), (len(prompts), stop - start))
      last = np.clip(lengths - 1 - start, 0, stop - start - 1).astype(np.int32)
      chunk_logits, cache = self._prefill(state, jnp.asarray(tokens[:, start:stop]), jnp.asarray(positions),
                                          jnp.asarray(last), cache)
      in_chunk = jnp.asarray((lengths - 1 >= start) & (lengths - 1 < stop))[:, None]
      logits = chunk_logits if logits is None else jnp.where(in_chunk, chunk_logits, logits)
    return logits, dataclasses.replace(cache, lengths=jnp.asarray(lengths))

  def _decode_loop(self, capacity: int, sampling: SamplingConfig, stop_ids: tuple[int, ...]):
    key = (capacity, sampling, stop_ids)
    if key not in self._decode_loops:
      self._decode_loops[key] = jax.jit(functools.partial(self._decode_fn, capacity, sampling, stop_ids),
                                        donate_argnames=("cache",))
    return self._decode_loops[key]

  def _decode_fn(self, capacity, sampling, stop_ids, state, logits, cache, rng, max_new):
    """Samples up to `max_new` (traced, <= capacity) tokens: [B, capacity] tokens, their fp32 log-probs, the number
    of steps and the cache."""
    model = nnx.merge(self.graphdef, state)
    batch = logits.shape[0]
    stops = jnp.asarray(stop_ids if stop_ids else (-1,), jnp.int32)
    out = jnp.zeros((batch, capacity), jnp.int32)
    lps = jnp.zeros((batch, capacity), jnp.float32)
    first = sample(logits, jax.random.fold_in(rng, 0), sampling)

    def cond(carry):
      step, _, _, done, _, _, _ = carry
      return (step < max_new) & ~jnp.all(done)

    def body(carry):
      step, token, token_lp, done, out, lps, cache = carry
      out = out.at[:, step].set(token)
      lps = lps.at[:, step].set(token_lp)
      done = done | jnp.isin(token, stops)
      step_logits, cache = model(token[:, None], cache.lengths[:, None], cache=cache)
      cache = dataclasses.replace(cache, lengths=cache.lengths + 1)
      nxt = sample(step_logits[:, 0], jax.random.fold_in(rng, step + 1), sampling)
      nxt_lp = sampled_logprobs(step_logits[:, 0], nxt, sampling)
      return step + 1, jnp.where(done, token, nxt), jnp.where(done, token_lp, nxt_lp), done, out, lps, cache

    init = (jnp.int32(0), first, sampled_logprobs(logits, first, sampling), jnp.zeros((batch,), bool), out, lps,
            cache)
    steps, _, _, _, out, lps, cache = jax.lax.while_loop(cond, body, init)
    return out, lps, steps, cache

  def generate(self, state, prompts: Sequence[Sequence[int]], *, max_new_tokens: int = 64,
               sampling: SamplingConfig = SamplingConfig(), rng: jax.Array | None = None,
               stop_ids: Sequence[int] | None = None) -> GenerationResult:
    """Generates continuations for a batch of prompts.

    Args:
      state: params.  prompts: B token-id lists of any lengths.  max_new_tokens: M.
      sampling: greedy by default.  rng: PRNG key (required when sampling with temperature > 0).
      stop_ids: tokens that end a row (default: the model's eos ids); [] disables stopping.
    Raises:
      ContextLengthError: a prompt plus M tokens exceeds the model's context and no RoPE scaling allows it.
    """
    if sampling.temperature > 0 and rng is None:
      raise ShapeError("sampling with temperature > 0 needs an explicit rng key")
    if max_new_tokens < 1:
      raise ShapeError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    longest = max(len(p) for p in prompts)
    check_context(self.cfg, longest, max_new_tokens)
    stop_ids = tuple(self.cfg.eos_token_ids if stop_ids is None else stop_ids)
    capacity = 1 << max(4, (max_new_tokens - 1).bit_length())  # power-of-two buckets: few decode compiles
    cache = self.init_cache(len(prompts), _round_up(longest + capacity, self.pad_to))
    t0 = time.perf_counter()
    logits, cache = self.prefill(state, prompts, cache)
    logits.block_until_ready()
    t1 = time.perf_counter()
    out, lps, steps, _ = self._decode_loop(capacity, sampling, stop_ids)(
        state, logits, cache, jax.random.PRNGKey(0) if rng is None else rng, jnp.int32(max_new_tokens))
    out, lps = np.asarray(out), np.asarray(lps)
    t2 = time.perf_counter()
    tokens, reasons, logprobs, stops = [], [], [], []
    for row, row_lp in zip(out[:, :int(steps)], lps[:, :int(steps)]):
      hit = [i for i, t in enumerate(row) if t in stop_ids]
      n = hit[0] if hit else len(row)
      tokens.append(row[:n].tolist())
      logprobs.append(row_lp[:n + 1] if hit else row_lp[:n])
      stops.append(int(row[n]) if hit else None)
      reasons.append("stop" if hit else "length")
    return GenerationResult(tokens, reasons, int(sum(len(p) for p in prompts)), t1 - t0, t2 - t1, int(steps),
                            stop_tokens=stops, logprobs=logprobs)
