"""The KV-method interface (DESIGN.md "KV methods"), its registry, and the layer cache every method runs in.

A method is a frozen dataclass of its options (hashable: it is static metadata of the cache pytree) with

  init(spec) -> index                                   the method's state: summaries, centroids, codebooks, ...
  prefill(spec, index, k, v, lengths, qstat) -> index   builds the index from the filled cache k, v [B, K, S, H]
  append(spec, index, k, v, positions) -> index         a decode step's new keys k, v [B, T, K, H] at [B, T]
  select(spec, index, q, k, lengths) -> Selection       which blocks/tokens each head attends to (budget-bound)
  finish(spec, index, q, out, lse) -> out               optional post-attention step (Sink-KV's zero-value slot)

`MethodLayerKV` keeps the dense keys/values (the tier the selection reads from) beside the index and follows the
`DenseLayerKV` protocol (`update`, `attend`), so the unchanged model decodes with any method: prefill chunks attend
densely (every method here is a decode-time method; LongGen's trained pattern also has a mask for prefill), a
decode step attends over `select`'s choice through `attend.attend_selection`. A method whose budget covers the
whole cache selects everything and equals dense attention.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lcjax.config import ModelConfig, RopeConfig
from lcjax.errors import ConfigError, ShapeError
from lcjax.kvcache.attend import Selection, attend_selection
from lcjax.kvcache.dense import DenseLayerKV, KVCache
from lcjax.kvcache.select import add_to_blocks, block_sums, rotate
from lcjax.layers.rope import rope_frequencies
from lcjax.ops.mask import MaskSpec
from lcjax.registry import Registry

KV_METHODS: Registry[type] = Registry("KV method")


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """What a method's layer state is built for (static).

  Attributes:
    layer, num_layers: this layer and L.  batch, num_heads, num_kv_heads, head_dim: B, N, K, H.
    max_len: S, cache slots.  context: prompt length the budget is relative to.  budget: resolved tokens (S for
    "all").  full: the budget covers the whole cache.  trained_len: the model's trained context (the window
    LongHeads keeps each head within; evaluation past it passes the trained value explicitly, see `layer_spec`).
    rope: RoPE config.  rope_len: the max_seq_len the model's RoPE tables are built for (0: trained_len).
  """

  layer: int
  num_layers: int
  batch: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  max_len: int
  context: int
  budget: int
  full: bool
  trained_len: int
  rope: RopeConfig
  rope_len: int = 0

  def inv_freq(self) -> np.ndarray:
    """RoPE inverse frequencies [H/2] of the model."""
    return rope_frequencies(self.rope, self.head_dim, self.rope_len or self.trained_len)[0]


def resolve_budget(budget, context: int, max_len: int) -> tuple[int, bool]:
  """Tokens a method may attend to per step.

  Args:
    budget: "all" (every cached key), a fraction in (0, 1] of the context, or a token count <= context.
    context: the prompt length.  max_len: cache slots.
  Returns:
    (tokens, full).
  Raises:
    ConfigError: a budget larger than the context (use "all"), non-positive, or of another type.
  """
  if budget == "all":
    return max_len, True
  if isinstance(budget, float) and not isinstance(budget, bool):
    if not 0.0 < budget <= 1.0:
      raise ConfigError(f"a fractional KV budget must be in (0, 1], got {budget}")
    return max(1, int(budget * context)), False
  if isinstance(budget, (int, np.integer)) and not isinstance(budget, bool):
    if budget < 1:
      raise ConfigError(f"KV budget must be >= 1 token, got {budget}")
    if budget > context:
      raise ConfigError(f"KV budget of {budget} tokens is larger than the context of {context} tokens; use "
                        f"budget='all' to attend to everything")
    return int(budget), False
  raise ConfigError(f"KV budget must be 'all', a fraction in (0, 1] or a token count; got {budget!r}")


@dataclasses.dataclass(frozen=True)
class KVMethod:
  """Base of every KV method: options as fields, the interface as methods (defaults: no index, no post-step).

  Attributes:
    budget: "all", a fraction of the context, or tokens (see `resolve_budget`).
    impl: the block-sparse attention impl of decode steps (`lcjax.ops.block_sparse.BLOCK_SPARSE_IMPLS`: "auto",
      "reference", "xla", "pallas_triton", "pallas_tpu", "pallas_mosaic_gpu").
  """

  budget: Any = "all"
  impl: str = "auto"
  uses_queries = False  # collect prefill query statistics (A^2ATS's query-aware codebooks)

  def init(self, spec: MethodSpec) -> dict:
    """The empty index."""
    return {}

  def prefill(self, spec: MethodSpec, index, k, v, lengths, qstat) -> dict:
    """Builds the index from the cache k, v [B, K, S, H] filled at [0, lengths)."""
    return index

  def append(self, spec: MethodSpec, index, k, v, positions) -> dict:
    """Adds a decode step's keys k, v [B, T, K, H] at positions [B, T] to the index."""
    return index

  def select(self, spec: MethodSpec, index, q, k, lengths) -> Selection:
    """The selection for queries q [B, 1, N, H] over the cache k [B, K, S, H] filled at [0, lengths)."""
    raise NotImplementedError

  def finish(self, spec: MethodSpec, index, q, out, lse):
    """Post-attention step on out [B, T, N, H] with its lse [B, T, N]."""
    return out

  def prefill_attend(self, spec: MethodSpec, index, layer: "MethodLayerKV", q, mask: MaskSpec, **kwargs):
    """Attention of a prefill chunk q [B, T, N, H]: dense by default."""
    return DenseLayerKV(layer.k, layer.v).attend(q, mask, **kwargs)


def dense_blocks(lengths, batch: int, heads: int, max_len: int, block: int) -> Selection:
  """Every filled block: the full selection [B, heads, ceil(S/C)]."""
  m = -(-max_len // block)
  idx = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32), (batch, heads, m))
  counts = jnp.broadcast_to(((lengths + block - 1) // block)[:, None], (batch, heads)).astype(jnp.int32)
  return Selection(idx, counts, block)


@KV_METHODS.register("dense")
@dataclasses.dataclass(frozen=True)
class Dense(KVMethod):
  """Every key of the cache (the baseline), through the same selection path."""

  block_size: int = 64

  def select(self, spec, index, q, k, lengths):
    return dense_blocks(lengths, spec.batch, spec.num_kv_heads, spec.max_len, self.block_size)


@dataclasses.dataclass(frozen=True)
class BlockSummaryMethod(KVMethod):
  """Shared index of methods that score blocks of C positions by their keys (RetroLM pages, LongHeads chunks):
  running per-block key sums [B, K, P, H] and counts [B, P], built at prefill and extended by each decode step."""

  block_size: int = 64

  def num_blocks(self, spec: MethodSpec) -> int:
    return -(-spec.max_len // self.block_size)

  def budget_blocks(self, spec: MethodSpec, fixed: int) -> int:
    """Blocks the budget allows (at least `fixed` + 1: the always-attended blocks and one retrieved)."""
    m = min(-(-spec.budget // self.block_size), self.num_blocks(spec))
    if m <= fixed and not spec.full:
      raise ConfigError(f"{type(self).__name__}: a budget of {spec.budget} tokens is {m} block(s) of "
                        f"{self.block_size}; it needs more than the {fixed} always-attended block(s)")
    return m

  def init(self, spec):
    p = self.num_blocks(spec)
    return {"sums": jnp.zeros((spec.batch, spec.num_kv_heads, p, spec.head_dim), jnp.float32),
            "counts": jnp.zeros((spec.batch, p), jnp.int32)}

  def prefill(self, spec, index, k, v, lengths, qstat):
    sums, counts = block_sums(k, lengths, self.block_size)
    return {"sums": sums, "counts": counts}

  def append(self, spec, index, k, v, positions):
    sums, counts = add_to_blocks(index["sums"], index["counts"], k, positions, self.block_size)
    return {"sums": sums, "counts": counts}


def make_method(name: str, **options) -> KVMethod:
  """The method registered under `name` with its options (unknown names/options raise, naming what is accepted)."""
  return KV_METHODS.instantiate(name, **options)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MethodLayerKV:
  """One layer's cache under a KV method.

  Attributes:
    k, v: [B, K, S, H] dense keys (after RoPE) and values (the tier selections read from).
    index: the method's state (pytree).  qstat: [B, K, H, H] sum of pre-RoPE prefill query outer products per kv
    head (methods with `uses_queries`), else None.  method, spec: static.
  """

  k: jax.Array
  v: jax.Array
  index: Any
  qstat: jax.Array | None
  method: KVMethod = dataclasses.field(metadata=dict(static=True))
  spec: MethodSpec = dataclasses.field(metadata=dict(static=True))

  def _check(self, k_new):
    s = self.spec
    if k_new.shape[0] != s.batch or k_new.shape[2:] != (s.num_kv_heads, s.head_dim):
      raise ShapeError(f"KV method state ({type(self.method).__name__}) was built for B={s.batch}, K={s.num_kv_heads}"
                       f", H={s.head_dim}; got keys of shape [B, T, K, H] = {tuple(k_new.shape)}")

  def update(self, k, v, positions) -> "MethodLayerKV":
    """Writes k, v [B, T, K, H] at positions [B, T]; a decode step (T = 1) also appends to the index."""
    self._check(k)
    dense = DenseLayerKV(self.k, self.v).update(k, v, positions)
    index = self.index
    if k.shape[1] == 1:
      index = self.method.append(self.spec, index, k, v, positions)
    return dataclasses.replace(self, k=dense.k, v=dense.v, index=index)

  def observe(self, q, positions) -> "MethodLayerKV":
    """Accumulates prefill query statistics (q [B, T, N, H] after RoPE at positions [B, T]) when the method uses
    them; decode steps and other methods pass through."""
    if self.qstat is None or q.shape[1] == 1:
      return self
    b, t, n, h = q.shape
    kh = self.spec.num_kv_heads
    q_pre = rotate(jnp.swapaxes(q, 1, 2), -positions, self.spec.inv_freq())  # [B, N, T, H]
    q_pre = q_pre.reshape(b, kh, n // kh * t, h)
    return dataclasses.replace(self, qstat=self.qstat + jnp.einsum("bkth,bktj->bkhj", q_pre, q_pre))

  def attend(self, q, mask: MaskSpec, *, softcap: float | None = None, **kwargs):
    """Prefill chunks (T > 1) attend as the method says (dense by default); a decode step over the selection."""
    if q.shape[1] > 1:
      return self.method.prefill_attend(self.spec, self.index, self, q, mask, softcap=softcap, **kwargs)
    lengths = mask.q_positions[:, 0] + 1
    sel = self.method.select(self.spec, self.index, q, self.k, lengths)
    out, lse = attend_selection(q, self.k.astype(q.dtype), self.v.astype(q.dtype), sel, lengths, softcap=softcap,
                                impl=self.method.impl)
    return self.method.finish(self.spec, self.index, q, out, lse)


def layer_spec(cfg: ModelConfig, method: KVMethod, layer: int, batch: int, max_len: int, context: int,
               trained_len: int | None = None) -> MethodSpec:
  """The static spec of one layer (budget resolved against the context).

  Args:
    trained_len: the model's trained context; None: cfg.max_seq_len. Pass it when cfg.max_seq_len was raised to
      evaluate past the trained window (e.g. linear RoPE scaling at 4x), so window-bound methods keep the real one.
  """
  tokens, full = resolve_budget(method.budget, context, max_len)
  if trained_len is not None and trained_len < 1:
    raise ConfigError(f"trained_len must be >= 1 token, got {trained_len}")
  return MethodSpec(layer, cfg.num_layers, batch, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, max_len, context,
                    tokens, full, trained_len or cfg.max_seq_len, cfg.rope, cfg.max_seq_len)


def init_method_cache(cfg: ModelConfig, method: KVMethod, batch: int, max_len: int, context: int,
                      dtype=jnp.float32, trained_len: int | None = None) -> KVCache:
  """An empty cache of L `MethodLayerKV` layers ([B, K, max_len, H] each) for prompts of `context` tokens
  (trained_len: see `layer_spec`)."""
  layers = []
  for i in range(cfg.num_layers):
    spec = layer_spec(cfg, method, i, batch, max_len, context, trained_len)
    dense = DenseLayerKV.zeros(batch, max_len, cfg.num_kv_heads, cfg.head_dim, dtype)
    qstat = jnp.zeros((batch, cfg.num_kv_heads, cfg.head_dim, cfg.head_dim), jnp.float32) \
        if method.uses_queries else None
    layers.append(MethodLayerKV(dense.k, dense.v, method.init(spec), qstat, method, spec))
  if jnp.dtype(dtype) == jnp.int8:  # int8 keys/values (lcjax.kvcache.quantized), the method's index unchanged
    from lcjax.kvcache.quantized import int8_method_layer

    layers = [int8_method_layer(layer) for layer in layers]
  return KVCache(tuple(layers), jnp.zeros((batch,), jnp.int32))


@functools.partial(jax.jit, donate_argnames=("layer",))
def _prefill_layer(layer: MethodLayerKV, lengths):
  index = layer.method.prefill(layer.spec, layer.index, layer.k, layer.v, lengths, layer.qstat)
  return dataclasses.replace(layer, index=index)


def build_index(cache: KVCache) -> KVCache:
  """Runs every layer's `prefill` on the filled cache (one jitted call per layer: bounded temporaries; the layer
  number is dropped from the static spec so all layers share one compilation)."""
  layers = []
  for l in cache.layers:
    built = _prefill_layer(dataclasses.replace(l, spec=dataclasses.replace(l.spec, layer=0)), cache.lengths)
    layers.append(dataclasses.replace(built, spec=l.spec))
  return dataclasses.replace(cache, layers=tuple(layers))


def rewrap(cache: KVCache, cfg: ModelConfig, method: KVMethod, context: int, trained_len: int | None = None) -> KVCache:
  """The same filled keys/values under another method, its index built (query statistics kept if both use them).
  Lets one prefill serve several methods. trained_len: see `layer_spec`; None keeps the old method cache's."""
  old_spec = getattr(cache.layers[0], "spec", None)
  trained_len = trained_len or (old_spec.trained_len if old_spec is not None else None)
  out = init_method_cache(cfg, method, cache.layers[0].k.shape[0], cache.max_len, context, cache.layers[0].k.dtype,
                          trained_len)
  layers = []
  for old, new in zip(cache.layers, out.layers):
    qstat = new.qstat
    if qstat is not None:
      if getattr(old, "qstat", None) is None:
        raise ConfigError(f"KV method {type(method).__name__} needs prefill query statistics; prefill with a "
                          f"method that collects them (uses_queries) before rewrapping")
      qstat = jnp.copy(old.qstat)
    layers.append(dataclasses.replace(new, k=jnp.copy(old.k), v=jnp.copy(old.v), qstat=qstat))  # donation-safe
  return build_index(dataclasses.replace(out, layers=tuple(layers), lengths=jnp.copy(cache.lengths)))
