"""Lossless speculative decoding: a drafter proposes a chain or tree, the target verifies it in one pass.

  SpeculativeGenerator(target, drafter).generate(state, prompts, ...) -> SpeculativeResult

Each step of one jitted `lax.while_loop`:
  1. `drafter.draft(params, dstate, ctx, key)` -> DraftTree (node 0 = last verified token, not yet in the cache);
  2. the unchanged target model runs the T nodes at positions length + depth over a cache whose layers are
     `TreeLayerKV`: the nodes' keys/values stay in a side buffer and attention is LongSpec's hybrid tree attention
     (`ops.tree_attention`: the committed prefix through the block-sparse impls with lse, or a KV method's own
     selection; the tree under its ancestor mask; merged by lse);
  3. greedy or lossless sampling acceptance (`spec_tree`), per row;
  4. commit: the accepted path's keys/values are written at positions length .. length + n_acc (through the layer's
     own `update`, so a KV method's index sees exactly the decode-time appends), lengths advance per row by
     n_acc + 1, and the emitted tokens go to the output and the history.
Rows advance independently (per-row accepted lengths); finished rows are frozen.

Exactness with a KV method: a verify node at position p attends to the method's selection for a query at p over
the committed prefix plus its ancestors. This equals the method's sequential decode when its selection of
committed positions does not read the uncommitted keys and keeps the last D + 1 positions (dense, sink_window,
sink_kv); methods whose block scores include the newest keys (retrolm, longheads, ...) verify against the
selection made before those keys were appended.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.errors import CapacityError, ConfigError, ShapeError
from lcjax.inference.generate import GenerationResult, Generator, _round_up, check_context
from lcjax.inference.sampling import SamplingConfig, sample
from lcjax.inference.spec_tree import (Acceptance, DraftTree, ancestor_mask, depths, greedy_accept, sample_accept,
                                       sampling_probs)
from lcjax.kvcache.attend import attend_selection
from lcjax.kvcache.base import MethodLayerKV
from lcjax.kvcache.dense import DenseLayerKV, KVCache
from lcjax.ops.tree_attention import dense_prefix, merge_lse, tree_part


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DraftContext:
  """What a drafter sees of the verified state.

  Attributes:
    history: [B, Sh] int32 prompt + emitted tokens; history[b, lengths[b]] is the last verified token.
    lengths: [B] int32 positions committed to the target cache.  cache: the target's committed cache.
  """

  history: jax.Array
  lengths: jax.Array
  cache: Any

  @property
  def last(self) -> jax.Array:
    """[B] the last verified token (the root of the next tree)."""
    return jnp.take_along_axis(self.history, self.lengths[:, None], axis=1)[:, 0]


class Drafter:
  """Interface of a drafter (all methods but `start` run inside the jitted loop).

  Attributes:
    name: registry name.  vocab_size: the drafter's vocabulary (None: it copies the target's tokens).
    num_nodes: T, tree nodes including the root.  max_depth: D, draft tokens on the longest path.
  """

  name = "drafter"
  vocab_size: int | None = None
  num_nodes: int = 1
  max_depth: int = 0

  def start(self, params, prompts: Sequence[Sequence[int]], max_len: int):
    """The drafter's state after the prompts (host side, may run jitted prefills). Default: no state."""
    return jnp.zeros((), jnp.int32)

  def draft(self, params, dstate, ctx: DraftContext, key: jax.Array, sampling: SamplingConfig):
    """-> (DraftTree with T nodes, dstate). With temperature > 0 a stochastic drafter returns `probs`."""
    raise NotImplementedError

  def commit(self, params, dstate, ctx: DraftContext, acc: Acceptance):
    """The state after a verified step (`ctx` already advanced)."""
    return dstate


def check_gamma(gamma: int) -> int:
  """Validates the number of draft tokens per path."""
  if not isinstance(gamma, (int, np.integer)) or isinstance(gamma, bool) or gamma < 1:
    raise ConfigError(f"draft tokens (gamma) must be an integer >= 1, got {gamma!r}")
  return int(gamma)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TreeLayerKV:
  """A layer cache for the verify pass: the committed cache `inner` read-only, the tree's keys/values aside.

  Attributes:
    inner: DenseLayerKV or MethodLayerKV (committed positions [0, prefix_len)).  tree_mask: [B, T, T] bool.
    prefix_len: [B] int32.  tree_k, tree_v: [B, T, K, H] the nodes' keys/values (set by `update`).
    prefix_impl, tree_impl: static impl names of the two halves.
  """

  inner: Any
  tree_mask: jax.Array
  prefix_len: jax.Array
  tree_k: jax.Array
  tree_v: jax.Array
  prefix_impl: str = dataclasses.field(default="auto", metadata=dict(static=True))
  tree_impl: str = dataclasses.field(default="auto", metadata=dict(static=True))

  def update(self, k, v, positions) -> "TreeLayerKV":
    """Keeps the nodes' k, v [B, T, K, H] (in the cache dtype, as a decode step would store them)."""
    dt = self.inner.k.dtype
    return dataclasses.replace(self, tree_k=k.astype(dt), tree_v=v.astype(dt))

  def attend(self, q, mask, *, softcap: float | None = None, **kwargs):
    """Hybrid tree attention of the nodes q [B, T, N, H] (positions in mask.q_positions) -> [B, T, N, H]."""
    inner = self.inner
    if isinstance(inner, MethodLayerKV):
      out_p, lse_p = _method_prefix(inner, q, mask.q_positions, self.prefix_len, softcap)
    else:
      out_p, lse_p = dense_prefix(q, inner.k.astype(q.dtype), inner.v.astype(q.dtype), self.prefix_len,
                                  impl=self.prefix_impl, softcap=softcap)
    out_t, lse_t = tree_part(q, self.tree_k.astype(q.dtype), self.tree_v.astype(q.dtype), self.tree_mask,
                             impl=self.tree_impl, softcap=softcap)
    out, lse = merge_lse(out_p, lse_p, out_t, lse_t)
    if isinstance(inner, MethodLayerKV):
      out = inner.method.finish(inner.spec, inner.index, q, out, lse)
    return out


def _method_prefix(layer: MethodLayerKV, q, q_positions, prefix_len, softcap):
  """Each node's attention over the committed part of its KV method's selection (select as a decode query at the
  node's position would, keys past the committed prefix hidden): (out [B, T, N, H], lse [B, T, N])."""
  k, v = layer.k.astype(q.dtype), layer.v.astype(q.dtype)
  outs, lses = [], []
  for t in range(q.shape[1]):
    qt = q[:, t:t + 1]
    sel = layer.method.select(layer.spec, layer.index, qt, layer.k, q_positions[:, t] + 1)
    o, l = attend_selection(qt, k, v, sel, prefix_len, softcap=softcap, impl=layer.method.impl)
    outs.append(o)
    lses.append(l)
  return jnp.concatenate(outs, axis=1), jnp.concatenate(lses, axis=1)


def verify_cache(cache: KVCache, tree_mask, prefix_impl: str = "auto", tree_impl: str = "auto") -> KVCache:
  """The committed cache wrapped for a verify pass of T = tree_mask.shape[1] nodes."""
  layers = []
  for l in cache.layers:
    if not isinstance(l, (DenseLayerKV, MethodLayerKV)):
      raise ConfigError(f"speculative verification runs over DenseLayerKV or MethodLayerKV layers, got "
                        f"{type(l).__name__}")
    b, kh, _, h = l.k.shape
    empty = jnp.zeros((b, tree_mask.shape[1], kh, h), l.k.dtype)
    layers.append(TreeLayerKV(l, tree_mask, cache.lengths, empty, empty, prefix_impl, tree_impl))
  return dataclasses.replace(cache, layers=tuple(layers))


def _row_where(keep, new, old):
  """Per-row select of a pytree whose leaves lead with the batch axis (leaves that do not are taken from new)."""
  b = keep.shape[0]

  def pick(n, o):
    if n.ndim == 0 or n.shape[0] != b:
      return n
    return jnp.where(keep.reshape((b,) + (1,) * (n.ndim - 1)), n, o)

  return jax.tree.map(pick, new, old)


def commit(verified: KVCache, acc: Acceptance, active) -> KVCache:
  """Writes each row's accepted path (root + n_acc nodes) at positions lengths .. lengths + n_acc and advances
  lengths by n_acc + 1 (inactive rows unchanged). Returns the committed cache with the inner layers."""
  lengths = verified.lengths
  d = acc.path.shape[1]
  valid = (jnp.arange(d)[None] <= acc.n_acc[:, None]) & active[:, None]                    # [B, D + 1]
  layers = []
  for l in verified.layers:
    inner = l.inner
    idx = acc.path[:, :, None, None]
    k_path = jnp.take_along_axis(l.tree_k, idx, axis=1)
    v_path = jnp.take_along_axis(l.tree_v, idx, axis=1)
    far = inner.k.shape[2]                                                                  # dropped by the write
    pos = jnp.where(valid, lengths[:, None] + jnp.arange(d)[None], far)
    if isinstance(inner, MethodLayerKV):  # one decode-style append per position, as sequential decode does
      for j in range(d):
        new = inner.update(k_path[:, j:j + 1], v_path[:, j:j + 1], pos[:, j:j + 1])
        inner = dataclasses.replace(new, index=_row_where(valid[:, j], new.index, inner.index))
    else:
      inner = inner.update(k_path, v_path, pos)
    layers.append(inner)
  return dataclasses.replace(verified, layers=tuple(layers),
                             lengths=lengths + jnp.where(active, acc.n_acc + 1, 0).astype(lengths.dtype))


@dataclasses.dataclass
class SpeculativeResult(GenerationResult):
  """`GenerationResult` plus acceptance statistics.

  Attributes:
    accepted_hist: [D + 2] counts of (row, step) pairs that emitted 1 .. D + 1 tokens (index = tokens emitted).
    depth_accept: [D] fraction of active (row, step) pairs whose draft was accepted to depth >= d + 1.
  """

  accepted_hist: list[int] = dataclasses.field(default_factory=list)
  depth_accept: list[float] = dataclasses.field(default_factory=list)

  @property
  def mean_accepted(self) -> float:
    """Mean tokens emitted per verify step and row (accepted drafts + the target's token), in [1, D + 1]."""
    h = np.asarray(self.accepted_hist, np.float64)
    return float((h * np.arange(len(h))).sum() / max(h.sum(), 1.0))

  @property
  def decode_tokens_per_second(self) -> float:
    return sum(len(t) for t in self.tokens) / max(self.decode_seconds, 1e-9)


class SpeculativeGenerator:
  """Speculative generation over a `Generator` (dense) or `MethodGenerator` (KV method) target.

  Args:
    target: the target's generator (its cache, prefill and config are used).  drafter: a `Drafter`.
    prefix_impl: block-sparse impl of the prefix half (dense caches).  tree_impl: `ops.tree_attention` impl.
  Raises:
    ConfigError: the drafter's vocabulary differs from the target's.
  """

  def __init__(self, target: Generator, drafter: Drafter, *, prefix_impl: str = "auto", tree_impl: str = "auto"):
    if drafter.vocab_size is not None and drafter.vocab_size != target.cfg.vocab_size:
      raise ConfigError(f"drafter {drafter.name!r} has a vocabulary of {drafter.vocab_size} tokens; the target's "
                        f"has {target.cfg.vocab_size}: the drafter must share the target's tokenizer")
    if target.cfg.sliding_window is not None:
      raise ConfigError("speculative verification supports full-attention targets (cfg.sliding_window is set)")
    self.target, self.drafter = target, drafter
    self.prefix_impl, self.tree_impl = prefix_impl, tree_impl
    self._loops = {}

  def _loop(self, capacity: int, sampling: SamplingConfig, stop_ids: tuple[int, ...]):
    key = (capacity, sampling, stop_ids)
    if key not in self._loops:
      self._loops[key] = jax.jit(functools.partial(self._loop_fn, capacity, sampling, stop_ids),
                                 donate_argnames=("cache",))
    return self._loops[key]

  def _step(self, sampling, model, dparams, carry, rng):
    """One draft-verify-commit step: -> (acceptance, emitted [B, D + 1], committed cache, dstate)."""
    step, _, done, _, cache, hist, dstate, _ = carry
    dr = self.drafter
    ctx = DraftContext(hist, cache.lengths, cache)
    tree, dstate = dr.draft(dparams, dstate, ctx, jax.random.fold_in(rng, 2 * step + 1), sampling)
    mask = ancestor_mask(tree.parents)
    positions = cache.lengths[:, None] + depths(mask)
    logits, verified = model(tree.tokens, positions, cache=verify_cache(cache, mask, self.prefix_impl,
                                                                          self.tree_impl))
    if sampling.temperature == 0.0:
      acc = greedy_accept(tree, logits, dr.max_depth)
    else:
      acc = sample_accept(tree, sampling_probs(logits, sampling), jax.random.fold_in(rng, 2 * step + 2),
                          dr.max_depth)
    return acc, acc.emitted(tree.tokens), commit(verified, acc, ~done), dstate

  def _loop_fn(self, capacity, sampling, stop_ids, state, dparams, logits, cache, hist, dstate, rng, max_new):
    """The jitted generation loop: (out [B, capacity + D + 1], emitted counts [B], steps, stats, cache)."""
    model = nnx.merge(self.target.graphdef, state)
    d = self.drafter.max_depth
    b = logits.shape[0]
    stops = jnp.asarray(stop_ids if stop_ids else (-1,), jnp.int32)
    rows = jnp.arange(b)[:, None]
    first = sample(logits, jax.random.fold_in(rng, 0), sampling)
    out = jnp.zeros((b, capacity + d + 1), jnp.int32).at[:, 0].set(first)
    hist = hist.at[jnp.arange(b), cache.lengths].set(first)
    done = jnp.isin(first, stops) | (max_new <= 1)
    stats = (jnp.zeros((d + 2,), jnp.int32), jnp.zeros((max(d, 1),), jnp.int32))

    def cond(carry):
      return (carry[0] < max_new) & ~jnp.all(carry[2])

    def body(carry):
      step, n_out, done, out, cache, hist, dstate, (len_hist, depth_hits) = carry
      lengths = cache.lengths
      acc, emitted, cache, dstate = self._step(sampling, model, dparams, carry, rng)
      active = ~done
      offs = jnp.arange(d + 1)[None]
      valid = (offs <= acc.n_acc[:, None]) & active[:, None]
      out = out.at[rows, jnp.where(valid, n_out[:, None] + offs, out.shape[1])].set(emitted, mode="drop")
      hist = hist.at[rows, jnp.where(valid, lengths[:, None] + 1 + offs, hist.shape[1])].set(emitted, mode="drop")
      hit = jnp.any(valid & jnp.isin(emitted, stops), axis=1)
      n_out = n_out + jnp.where(active, acc.n_acc + 1, 0)
      len_hist = len_hist.at[acc.n_acc + 1].add(active.astype(jnp.int32))
      depth_hits = depth_hits + jnp.sum((acc.n_acc[:, None] > jnp.arange(depth_hits.shape[0])[None])
                                        & active[:, None], axis=0, dtype=jnp.int32)
      dstate = self.drafter.commit(dparams, dstate, DraftContext(hist, cache.lengths, cache), acc)
      done = done | (active & hit) | (n_out >= max_new)
      return step + 1, n_out, done, out, cache, hist, dstate, (len_hist, depth_hits)

    init = (jnp.int32(0), jnp.ones((b,), jnp.int32), done, out, cache, hist, dstate, stats)
    steps, n_out, _, out, cache, _, _, stats = jax.lax.while_loop(cond, body, init)
    return out, n_out, steps, stats, cache

  def generate(self, state, prompts: Sequence[Sequence[int]], *, draft_params=None, max_new_tokens: int = 64,
               sampling: SamplingConfig = SamplingConfig(), rng: jax.Array | None = None,
               stop_ids: Sequence[int] | None = None) -> SpeculativeResult:
    """Generates like `Generator.generate` (the same tokens when greedy; the same distribution when sampling).

    Args:
      state: target params.  prompts: B token-id lists.  draft_params: the drafter's params (None for
      parameter-free drafters).  max_new_tokens, sampling, rng, stop_ids: as `Generator.generate`.
    Raises:
      ContextLengthError / CapacityError: prompt + new tokens + the tree depth does not fit the context / cache.
    """
    tgt, dr = self.target, self.drafter
    if sampling.temperature > 0 and rng is None:
      raise ShapeError("sampling with temperature > 0 needs an explicit rng key")
    if max_new_tokens < 1:
      raise ShapeError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    longest = max(len(p) for p in prompts)
    check_context(tgt.cfg, longest, max_new_tokens + dr.max_depth)
    stop_ids = tuple(tgt.cfg.eos_token_ids if stop_ids is None else stop_ids)
    capacity = 1 << max(4, (max_new_tokens - 1).bit_length())
    slots = _round_up(longest + capacity + dr.max_depth + 1, tgt.pad_to)
    if hasattr(tgt, "context"):
      tgt.context = longest
    cache = tgt.init_cache(len(prompts), slots)
    check_tree_fits(cache.max_len, longest, max_new_tokens, dr.max_depth)
    hist = np.zeros((len(prompts), slots + dr.max_depth + 2), np.int32)
    for i, p in enumerate(prompts):
      hist[i, :len(p)] = p
    t0 = time.perf_counter()
    logits, cache = tgt.prefill(state, prompts, cache)
    dstate = dr.start(draft_params, prompts, slots)
    jax.block_until_ready((logits, dstate))
    t1 = time.perf_counter()
    out, n_out, steps, (len_hist, depth_hits), _ = self._loop(capacity, sampling, stop_ids)(
        state, draft_params, logits, cache, jnp.asarray(hist), dstate,
        jax.random.PRNGKey(0) if rng is None else rng, jnp.int32(max_new_tokens))
    out, n_out = np.asarray(out), np.asarray(n_out)
    t2 = time.perf_counter()
    tokens, reasons, stops = [], [], []
    for row, n in zip(out, n_out):
      row = row[:min(int(n), max_new_tokens)]
      hit = [i for i, t in enumerate(row) if t in stop_ids]
      tokens.append(row[:hit[0]].tolist() if hit else row.tolist())
      reasons.append("stop" if hit else "length")
      stops.append(int(row[hit[0]]) if hit else None)
    len_hist = np.asarray(len_hist)
    active = max(int(len_hist.sum()), 1)
    return SpeculativeResult(tokens, reasons, int(sum(len(p) for p in prompts)), t1 - t0, t2 - t1, int(steps),
                             stop_tokens=stops, accepted_hist=len_hist.tolist(),
                             depth_accept=(np.asarray(depth_hits)[:dr.max_depth] / active).tolist())


def check_tree_fits(cache_slots: int, longest: int, max_new_tokens: int, depth: int) -> None:
  """Raises `CapacityError` when a prompt + new tokens + a verify pass `depth` nodes deep exceeds the cache."""
  need = longest + max_new_tokens + depth + 1
  if need > cache_slots:
    raise CapacityError(f"a draft tree {depth} tokens deep after a prompt of {longest} + {max_new_tokens} new tokens "
                        f"needs {need} cache slots; the cache has {cache_slots}")
