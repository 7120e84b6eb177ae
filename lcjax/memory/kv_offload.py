"""KV caches in host/CXL tiers for decoding: paged layers with a device working set, and streamed layers.

Layer caches here follow the `DenseLayerKV` protocol (`update(k, v, positions)`, `attend(q, mask)`), so a model's
`KVCache.layers` can mix device-resident dense layers with offloaded ones (the split `lcjax.memory.memory_model`
chooses):

- `PagedLayerKV`: pages of C positions, (k, v) each [B, K, C, H], live in a `PageStore`; the step sees the device
  working set [B, K, W, C, H] and attends over its W*C keys, each slot's positions taken from `slot_page`. The
  host-side `PagedDecoder` prefetches the next step's pages (double-buffered, elastic, LRU) around each step.
- `StreamedLayerKV`: the whole layer [B, K, S, H] stays in a host memory kind; each step moves it to the device
  inside the jitted step (`jax.device_put(..., Space.Device)`) and writes new tokens back with a host-side
  `dynamic_update_slice` (no prefetch: the baseline an adaptive split is compared against).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.errors import ShapeError
from lcjax.kvcache.dense import DenseLayerKV, KVCache
from lcjax.memory.pages import PageStore, PrefetchStats, WorkingSet, begin_prefetch, finish_prefetch
from lcjax.memory.tiers import Tier, sharding_for, tier as get_tier
from lcjax.ops.decode import decode
from lcjax.ops.mask import MaskSpec

_FAR = np.int32(2**30)  # position of an empty slot: after every query, so causal masking hides it


def _write_heads_major(cache, new, rows, heads, slots):
  """cache[b, k, slots[b, t]] = new[b, t, k] (new [B, T, K, H]); out-of-range slots are dropped."""
  return cache.at[rows, heads, slots].set(jnp.swapaxes(new, 1, 2).astype(cache.dtype), mode="drop")


def host_write(host: jax.Array, new: jax.Array, start: jax.Array) -> jax.Array:
  """Writes new [B, T, K, H] at each row's contiguous positions start[b] + [0, T) into a host-memory-kind cache
  [B, K, S, H] (one host-side dynamic_update_slice per row; B is small at decode). Returns the host array."""
  new = jnp.swapaxes(new, 1, 2).astype(host.dtype)  # [B, K, T, H]
  for row in range(new.shape[0]):
    piece = jax.device_put(new[row:row + 1], jax.memory.Space.Host)
    host = jax.lax.dynamic_update_slice(host, piece, (row, 0, start[row], 0))
  return host


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PagedLayerKV:
  """One layer's device working set.

  Attributes:
    k, v: [B, K, W, C, H] slots (slot w holds page slot_page[w], positions slot_page[w]*C + [0, C)).
    slot_page: [W] int32, -1 for an empty slot.
    active: [W] bool, the slots this step selected; resident pages outside the selection stay hidden.
  """

  k: jax.Array
  v: jax.Array
  slot_page: jax.Array
  active: jax.Array

  @property
  def page_size(self) -> int:
    return self.k.shape[3]

  def update(self, k: jax.Array, v: jax.Array, positions: jax.Array) -> "PagedLayerKV":
    """Writes k, v [B, T, K, H] at positions [B, T] into the resident pages holding them (the prefetcher makes
    the write pages resident; a position whose page is not resident is dropped)."""
    c, w = self.page_size, self.k.shape[2]
    page, offset = positions // c, positions % c
    hit = self.slot_page[None, None, :] == page[..., None]  # [B, T, W]
    slot = jnp.where(jnp.any(hit, -1), jnp.argmax(hit, -1), w)
    flat = slot * c + offset  # index into the flattened W*C axis; >= W*C when missing
    rows = jnp.arange(k.shape[0])[:, None, None]
    heads = jnp.arange(k.shape[2])[None, :, None]
    b, kh, _, _, h = self.k.shape

    def write(cache, new):
      out = _write_heads_major(cache.reshape(b, kh, w * c, h), new, rows, heads, flat[:, None, :])
      return out.reshape(cache.shape)

    return PagedLayerKV(write(self.k, k), write(self.v, v), self.slot_page, self.active)

  def kv_positions(self, batch: int) -> jax.Array:
    """[B, W*C] absolute position of every slot entry (_FAR for empty or unselected slots)."""
    c = self.page_size
    pos = self.slot_page[:, None] * c + jnp.arange(c, dtype=jnp.int32)[None, :]
    pos = jnp.where((self.slot_page[:, None] >= 0) & self.active[:, None], pos, _FAR).reshape(-1)
    return jnp.broadcast_to(pos, (batch, pos.shape[0]))

  def attend(self, q: jax.Array, mask: MaskSpec, *, attention_impl: str = "auto", decode_impl: str = "auto",
             softcap: float | None = None) -> jax.Array:
    """Attention of q [B, T, N, H] over the resident keys; returns [B, T, N, H]."""
    b, kh, w, c, h = self.k.shape
    k = self.k.reshape(b, kh, w * c, h).astype(q.dtype)
    v = self.v.reshape(b, kh, w * c, h).astype(q.dtype)
    return decode(q, k, v, mask=mask.with_arrays(kv_positions=self.kv_positions(b)), impl=decode_impl,
                  softcap=softcap)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class StreamedLayerKV:
  """One layer's cache kept in a host memory kind and moved to the device inside each step.

  Attributes:
    k, v: [B, K, S, H] arrays whose sharding has a host memory kind (e.g. pinned_host).
  """

  k: jax.Array
  v: jax.Array

  def update(self, k: jax.Array, v: jax.Array, positions: jax.Array) -> "StreamedLayerKV":
    """Writes k, v [B, T, K, H] at each row's contiguous positions [B, T] into the host arrays."""
    return StreamedLayerKV(host_write(self.k, k, positions[:, 0]), host_write(self.v, v, positions[:, 0]))

  def attend(self, q: jax.Array, mask: MaskSpec, **kwargs) -> jax.Array:
    """Moves the layer to the device and attends as the dense cache does."""
    k = jax.device_put(self.k, jax.memory.Space.Device)
    v = jax.device_put(self.v, jax.memory.Space.Device)
    return DenseLayerKV(k, v).attend(q, mask, **kwargs)


def to_streamed(layer: DenseLayerKV, t: Tier | str = "pinned_host") -> StreamedLayerKV:
  """Moves a dense layer's cache into host tier `t` (which must have a JAX memory kind on this backend)."""
  t = get_tier(t)
  s = sharding_for(t)
  if s is None:
    raise ShapeError(f"a streamed layer needs a JAX host memory kind; tier {t.name!r} is a numpy buffer here "
                     f"(use a paged layer for it)")
  return StreamedLayerKV(jax.device_put(layer.k, s), jax.device_put(layer.v, s))


def pages_of(layer: DenseLayerKV, length: int, page_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
  """Cuts the first `length` positions of a dense layer into pages ((k, v), each [B, K, C, H]; zero padded)."""
  k, v = np.asarray(layer.k), np.asarray(layer.v)
  n = -(-length // page_size)
  pad = n * page_size - k.shape[2]
  if pad > 0:
    widths = ((0, 0), (0, 0), (0, pad), (0, 0))
    k, v = np.pad(k, widths), np.pad(v, widths)
  return [(k[:, :, p * page_size:(p + 1) * page_size], v[:, :, p * page_size:(p + 1) * page_size])
          for p in range(n)]


def dense_selection(layer: int, positions: np.ndarray, page_size: int) -> list[int]:
  """The dense method's pages for a step writing at `positions` [B]: every page up to the last write page."""
  return list(range(int(positions.max()) // page_size + 1))


@dataclasses.dataclass
class PagedDecoder:
  """Greedy decoding with some layers paged in a host/CXL tier (the others stay dense on the device).

  Args:
    cfg, graphdef: the model.  tier: where pages live.  page_size: C.  num_slots: W pages per layer on device.
    select: `select(layer, positions [B], page_size) -> page ids` the step writing at `positions` attends to
      (a KV method's selection; `dense_selection` for dense). The write pages are always added.
    overlap: dispatch the next step's page transfers before this step's compute (double buffering).
  """

  cfg: object
  graphdef: object
  tier: Tier | str = "pinned_host"
  page_size: int = 64
  num_slots: int = 64
  select: Callable = dense_selection
  overlap: bool = True

  def __post_init__(self):
    self.tier = get_tier(self.tier)
    self._step = jax.jit(self._step_fn, donate_argnames=("layers",))

  def _step_fn(self, state, token, positions, layers, lengths):
    model = nnx.merge(self.graphdef, state)
    logits, cache = model(token[:, None], positions[:, None], cache=KVCache(tuple(layers), lengths))
    return logits[:, 0], cache.layers

  def offload(self, cache: KVCache, paged_layers: Sequence[int]):
    """Moves `paged_layers` of a filled dense cache into page stores. Returns (layers, {layer: (store, ws)})."""
    length = int(np.asarray(cache.lengths).max())
    layers, paged = list(cache.layers), {}
    for i in paged_layers:
      store = PageStore.create(self.tier, pages_of(cache.layers[i], length, self.page_size))
      example = jax.tree.map(jnp.asarray, store.pages[0]) if len(store) else None
      paged[i] = (store, WorkingSet.empty(example, self.num_slots, axis=2))
      layers[i] = None
    return layers, paged

  def _needs(self, layer: int, store: PageStore, positions: np.ndarray) -> tuple[list[int], PageStore]:
    """Pages the step at `positions` needs in `layer` (selection + write pages), creating new write pages."""
    write = sorted({int(p) // self.page_size for p in positions})
    while len(store) <= write[-1]:
      store = store.append(jax.tree.map(np.zeros_like, jax.tree.map(np.asarray, store.pages[0])))
    return list(dict.fromkeys(list(self.select(layer, positions, self.page_size)) + write)), store

  def decode(self, state, logits: jax.Array, cache: KVCache, steps: int, paged_layers: Sequence[int]):
    """Greedy decoding for `steps` tokens after a prefill.

    Args:
      state: params.  logits: [B, V] next-token logits from prefill.  cache: the filled dense cache.
      steps: tokens to generate.  paged_layers: layers moved to the tier (the rest stay on device).
    Returns:
      (tokens [B, steps] np.int32 (the first is argmax of `logits`), per-step logits [steps, B, V] np.float32,
      per-step PrefetchStats summed over layers).
    """
    layers, paged = self.offload(cache, paged_layers)
    lengths = np.asarray(cache.lengths).astype(np.int32)
    token = jnp.argmax(logits, -1).astype(jnp.int32)
    tokens, all_logits, stats = [], [], []
    pending, needs = self._begin_all(paged, lengths)
    for t in range(steps):
      positions = lengths + t
      paged, step_stats = self._finish_all(paged, pending)
      stats.append(step_stats)
      step_layers = [self._layer_view(paged[i][1], needs[i]) if i in paged else layers[i]
                     for i in range(len(layers))]
      if self.overlap and t + 1 < steps:  # next step's transfers go out before this step's compute
        pending, needs = self._begin_all(paged, positions + 1)
      tokens.append(token)
      step_logits, out_layers = self._step(state, token, jnp.asarray(positions), step_layers,
                                           jnp.asarray(positions))
      all_logits.append(step_logits)
      written = {int(p) // self.page_size for p in positions}
      for i, out in enumerate(out_layers):
        if i in paged:
          store, ws = paged[i]
          paged[i] = (store, ws.with_slots((out.k, out.v)).mark_dirty(written))
        else:
          layers[i] = out
      token = jnp.argmax(step_logits, -1).astype(jnp.int32)
      if not self.overlap and t + 1 < steps:  # transfers only after the compute: nothing overlaps
        jax.block_until_ready(step_logits)
        pending, needs = self._begin_all(paged, positions + 1)
    return (np.stack([np.asarray(x) for x in tokens], 1), np.stack([np.asarray(x) for x in all_logits]), stats)

  def _begin_all(self, paged: dict, positions: np.ndarray):
    """Starts every paged layer's transfers for the step writing at `positions` (updates `paged` stores).
    Returns ({layer: Pending}, {layer: needed page ids})."""
    pending, needs = {}, {}
    for i, (store, ws) in paged.items():
      needs[i], store = self._needs(i, store, positions)
      paged[i] = (store, ws)
      pending[i] = begin_prefetch(store, ws, needs[i])
    return pending, needs

  @staticmethod
  def _layer_view(ws: WorkingSet, need: list[int]) -> PagedLayerKV:
    """The step's view of a working set: its slots, page table and which slots the step selected."""
    active = jnp.asarray(np.isin(ws.table, need))
    return PagedLayerKV(ws.slots[0], ws.slots[1], ws.slot_page, active)

  @staticmethod
  def _finish_all(paged: dict, pending: dict):
    """Installs every layer's pending pages. Returns (new paged dict, PrefetchStats summed over layers)."""
    out, stats = {}, []
    for i, (store, ws) in paged.items():
      ws, store, st = finish_prefetch(store, ws, pending[i])
      out[i] = (store, ws)
      stats.append(st)
    return out, _sum_stats(stats)


def _sum_stats(items: Sequence[PrefetchStats]) -> PrefetchStats:
  """Field-wise sum of prefetch stats (one step over all layers)."""
  if not items:
    return PrefetchStats(0, 0, 0, 0, 0, 0, 0)
  return PrefetchStats(*[sum(getattr(s, f.name) for s in items) for f in dataclasses.fields(PrefetchStats)])
