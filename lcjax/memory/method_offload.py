"""KV methods over a host-tier cache: select on the device, move only the selected rows.

Every layer's dense keys/values [B, K, S, H] live in a host memory kind (pinned_host / unpinned_host); the method's
index (page sums, centroids, codes, ...) stays on the device. A decode step runs, inside the one jitted step,

  q -> method.select (device, from the index) -> host gather of the selected rows (`compute_on` device_host)
    -> only those rows cross to the device -> exact attention over them

which is A^2ATS's heterogeneous architecture (codes on the accelerator, KV in CPU memory, top-K tokens fetched) and
RetroLM's page offload, for every registered method (`to_host_method_cache`).

SpeContext's selection is known before the big model's step (its retrieval model runs first), so its layers keep a
device working set of the selected tokens and load only the difference from the previous step's selection
(elastic loading, `ElasticLayerKV`): the number of missing tokens picks, at run time (`lax.switch`), the smallest
of a few static transfer sizes. The fetches depend only on the selection, not on the big model's activations, so
an accelerator's scheduler can run them while earlier layers compute (the asynchronous prefetch dataflow).

On the CPU backend memory kinds are honoured but placement is a no-op: tests check numbers (== the device-resident
method) and, lowered for cuda/tpu, the host-compute gather and placement annotations.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental.compute_on import compute_on

from lcjax.errors import ConfigError, ShapeError
from lcjax.kvcache.attend import _FAR, Selection, attend_rows, attend_selection
from lcjax.kvcache.base import MethodLayerKV
from lcjax.kvcache.dense import KVCache
from lcjax.kvcache.select import as_mask
from lcjax.memory.kv_offload import host_write
from lcjax.memory.tiers import Tier, sharding_for, tier as get_tier

if "compute_type" in inspect.signature(compute_on).parameters:  # jax >= 0.12
  _on_host = compute_on(compute_type="device_host", out_memory_spaces=jax.memory.Space.Device)
else:  # jax 0.10 / 0.11
  _on_host = compute_on("device_host")

_ROWS = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,))


@_on_host
@jax.jit
def _gather_on_host(flat, rows):
  return lax.gather(flat, rows, _ROWS, slice_sizes=(1, flat.shape[1]), mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)


def host_take(x: jax.Array, positions: jax.Array) -> jax.Array:
  """Rows of a host-resident cache, gathered on the host and moved to the device.

  Args:
    x: [B, K, S, H] in a host memory kind.  positions: [B, K, P] int32 in [0, S) (device).
  Returns:
    [B, K, P, H] on the device: only these B*K*P rows cross the host link.
  """
  b, kh, s, h = x.shape
  rows = (jnp.arange(b)[:, None, None] * kh + jnp.arange(kh)[None, :, None]) * s + positions.astype(jnp.int32)
  rows = jax.device_put(rows.reshape(-1, 1), jax.memory.Space.Host)
  return _gather_on_host(x.reshape(b * kh * s, h), rows).reshape(b, kh, -1, h)


def _to_device(x):
  return jax.device_put(x, jax.memory.Space.Device)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class HostMethodLayerKV(MethodLayerKV):
  """A `MethodLayerKV` whose k, v [B, K, S, H] are in a host memory kind (index and query statistics on device).

  Decode steps read only the selected rows (`host_take`); a multi-token chunk (speculative verification) moves the
  whole layer to the device and attends as the method's prefill does.
  """

  def update(self, k, v, positions) -> "HostMethodLayerKV":
    """Writes k, v [B, T, K, H] at each row's contiguous positions [B, T] into the host cache; a decode step also
    appends to the (device) index."""
    self._check(k)
    index = self.index
    if k.shape[1] == 1:
      index = self.method.append(self.spec, index, k, v, positions)
    return dataclasses.replace(self, k=host_write(self.k, k, positions[:, 0]),
                               v=host_write(self.v, v, positions[:, 0]), index=index)

  def attend(self, q, mask, *, softcap: float | None = None, **kwargs):
    """A decode step over the selection, its rows fetched from the host; chunks over the whole moved layer."""
    if q.shape[1] > 1:
      on_device = MethodLayerKV(_to_device(self.k), _to_device(self.v), self.index, self.qstat, self.method,
                                self.spec)
      return on_device.attend(q, mask, softcap=softcap, **kwargs)
    lengths = mask.q_positions[:, 0] + 1
    sel = self.method.select(self.spec, self.index, q, self.k, lengths)
    out, lse = attend_selection(q, self.k, self.v, sel, lengths, softcap=softcap, impl=self.method.impl,
                                take=host_take)
    return self.method.finish(self.spec, self.index, q, out, lse)


def _host_sharding(t: Tier | str):
  t = get_tier(t)
  s = sharding_for(t)
  if s is None or t.memory_kind == "device":
    raise ConfigError(f"a host-tier KV cache needs a host JAX memory kind (pinned_host, unpinned_host); tier "
                      f"{t.name!r} is {'the device' if t.memory_kind == 'device' else 'a numpy buffer here'}")
  return s


def to_host_method_cache(cache: KVCache, t: Tier | str = "pinned_host") -> KVCache:
  """Moves a prefilled KV-method cache's dense k/v into host tier `t` (indices stay on the device).

  Args:
    cache: a `KVCache` of `MethodLayerKV` layers (e.g. after `MethodGenerator.prefill`).  t: the host tier.
  Returns:
    The same cache with `HostMethodLayerKV` layers.
  """
  s = _host_sharding(t)
  layers = []
  for layer in cache.layers:
    if not isinstance(layer, MethodLayerKV):
      raise ShapeError(f"to_host_method_cache takes KV-method layers (MethodLayerKV), got {type(layer).__name__}")
    layers.append(HostMethodLayerKV(jax.device_put(layer.k, s), jax.device_put(layer.v, s), layer.index,
                                    layer.qstat, layer.method, layer.spec))
  return dataclasses.replace(cache, layers=tuple(layers))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ElasticLayerKV(MethodLayerKV):
  """A token-selection method's layer (SpeContext) with the KV on the host and a device working set.

  Attributes (beyond `MethodLayerKV`'s; k, v are host-resident):
    buf_k, buf_v: [B, K, W, H] the selected tokens' keys/values on the device (W = the budget).
    buf_pos: [B, K, W] int32 their positions, -1 for an empty slot.
    loaded: [] int32, rows per (batch, kv head) the last install moved to the device (its transfer size).
  """

  buf_k: jax.Array = None
  buf_v: jax.Array = None
  buf_pos: jax.Array = None
  loaded: jax.Array = None

  def update(self, k, v, positions) -> "ElasticLayerKV":
    """Writes a decode step's k, v [B, 1, K, H] to the host cache and into the working-set slot reserved for its
    position (the selection includes the token being written; its fetched row was not written yet)."""
    self._check(k)
    if k.shape[1] != 1:
      raise ShapeError("an elastic host-tier layer decodes one token per step; prefill with the device method cache "
                       f"and convert it with to_elastic (got a chunk of {k.shape[1]} tokens)")
    hit = self.buf_pos == positions[:, :, None]                                # [B, K, W]
    put = lambda buf, new: jnp.where(hit[..., None], jnp.swapaxes(new, 1, 2).astype(buf.dtype), buf)  # noqa: E731
    return dataclasses.replace(self, k=host_write(self.k, k, positions[:, 0]),
                               v=host_write(self.v, v, positions[:, 0]),
                               buf_k=put(self.buf_k, k), buf_v=put(self.buf_v, v))

  def attend(self, q, mask, *, softcap: float | None = None, **kwargs):
    """Attention of a decode query q [B, 1, N, H] over the working set."""
    lengths = mask.q_positions[:, 0] + 1
    kv_pos = jnp.where(self.buf_pos >= 0, self.buf_pos, _FAR)
    out, lse = attend_rows(q, self.buf_k, self.buf_v, kv_pos, lengths, softcap=softcap)
    return self.method.finish(self.spec, self.index, q, out, lse)

  @staticmethod
  def install(cache: KVCache, sel: Selection, buckets: Sequence[int] | None = None) -> tuple[KVCache, jax.Array]:
    """Installs a token selection (block size 1, shared by all layers) by loading only the tokens the working
    sets lack. Returns (cache, moved [B]: tokens loaded per kv head, averaged as `specontext.install` counts)."""
    layer0 = cache.layers[0]
    w = layer0.buf_pos.shape[-1]
    plan = elastic_plan(layer0.buf_pos, sel, cache.max_len)
    buckets = tuple(buckets or elastic_buckets(w))
    need_pos, slots, n_need = plan["need_pos"], plan["slots"], plan["n_need"]

    rows = jnp.arange(sel.indices.shape[0])[:, None, None]
    heads = jnp.arange(sel.indices.shape[1])[None, :, None]

    def branch(e):  # load the first e missing tokens of every layer into their free slots
      to = jnp.where(jnp.arange(e) < n_need[..., None], slots[..., :e], w)  # beyond the missing count: dropped

      def put(buf, host):
        return buf.at[rows, heads, to].set(host_take(host, need_pos[..., :e]).astype(buf.dtype), mode="drop")

      return lambda layers: tuple((put(bk, k), put(bv, v)) for k, v, bk, bv in layers)

    which = jnp.searchsorted(jnp.asarray(buckets, jnp.int32), jnp.max(n_need))
    bufs = lax.switch(which, [branch(e) for e in buckets],
                      tuple((l.k, l.v, l.buf_k, l.buf_v) for l in cache.layers))
    index = {"indices": sel.indices, "counts": sel.counts}
    loaded = jnp.asarray(buckets, jnp.int32)[which]
    layers = tuple(dataclasses.replace(l, buf_k=bk, buf_v=bv, buf_pos=plan["buf_pos"], index=index, loaded=loaded)
                   for l, (bk, bv) in zip(cache.layers, bufs))
    moved = jnp.sum(n_need, axis=1) // sel.indices.shape[1]
    return dataclasses.replace(cache, layers=layers), moved


def elastic_buckets(width: int) -> tuple[int, ...]:
  """The static transfer sizes of an elastic load into a working set of `width` slots: width/16 ... width."""
  return tuple(sorted({max(1, width // d) for d in (16, 8, 4, 2, 1)}))


def loaded_rows(moved_max: int, width: int) -> int:
  """Rows per kv head an elastic load of `moved_max` missing tokens transfers (its bucket)."""
  return next(b for b in elastic_buckets(width) if b >= moved_max)


def elastic_plan(buf_pos: jax.Array, sel: Selection, max_len: int) -> dict:
  """Which tokens a working set must load for a new selection, and into which slots.

  Args:
    buf_pos: [B, K, W] positions held (-1: empty).  sel: indices [B, K, W'] (W' <= W), counts [B, K].
    max_len: S.
  Returns:
    {"buf_pos": [B, K, W] after the load (kept tokens stay in their slots; tokens no longer selected are evicted),
     "need_pos": [B, K, W] missing positions (first n_need valid, clipped in range), "slots": [B, K, W] the free
     slot each goes to, "n_need": [B, K]}.
  """
  w = buf_pos.shape[-1]
  if sel.block_size != 1 or sel.indices.shape[-1] > w:
    raise ShapeError(f"an elastic working set of {w} slots takes token selections (block size 1) of at most {w} "
                     f"tokens; got block size {sel.block_size} and {sel.indices.shape[-1]} entries")
  want_valid = jnp.arange(sel.indices.shape[-1]) < sel.counts[..., None]
  want_set = as_mask(sel.indices, want_valid, max_len)                           # [B, K, S]
  have_set = as_mask(jnp.maximum(buf_pos, 0), buf_pos >= 0, max_len)
  keep = (buf_pos >= 0) & jnp.take_along_axis(want_set, jnp.maximum(buf_pos, 0), -1)
  need = want_valid & ~jnp.take_along_axis(have_set, sel.indices, -1)
  pad = w - sel.indices.shape[-1]
  need = jnp.pad(need, ((0, 0), (0, 0), (0, pad)))
  want = jnp.pad(sel.indices, ((0, 0), (0, 0), (0, pad)))
  slots = jnp.argsort(keep, axis=-1, stable=True)                                # free slots first
  need_pos = jnp.take_along_axis(want, jnp.argsort(~need, axis=-1, stable=True), -1)  # missing tokens first
  n_need = jnp.sum(need, -1).astype(jnp.int32)
  first = jnp.arange(w) < n_need[..., None]
  rows = jnp.arange(buf_pos.shape[0])[:, None, None]
  heads = jnp.arange(buf_pos.shape[1])[None, :, None]
  new_pos = jnp.where(keep, buf_pos, -1).at[rows, heads, jnp.where(first, slots, w)].set(need_pos, mode="drop")
  return {"buf_pos": new_pos, "need_pos": jnp.clip(need_pos, 0, max_len - 1), "slots": slots, "n_need": n_need}


def to_elastic(cache: KVCache, t: Tier | str = "pinned_host") -> KVCache:
  """A prefilled SpeContext method cache with its k/v moved to host tier `t` and empty device working sets of the
  method's budget (the first step loads the whole selection, later steps the difference)."""
  s = _host_sharding(t)
  layers = []
  for layer in cache.layers:
    if not isinstance(layer, MethodLayerKV) or "indices" not in layer.index:
      raise ShapeError("to_elastic takes a token-selection method's cache (SpeContext: an index with 'indices'), "
                       f"got {type(layer).__name__} with index keys {sorted(getattr(layer, 'index', {}) or {})}")
    b, kh, _, h = layer.k.shape
    w = layer.index["indices"].shape[-1]
    layers.append(ElasticLayerKV(jax.device_put(layer.k, s), jax.device_put(layer.v, s), layer.index, layer.qstat,
                                 layer.method, layer.spec, jnp.zeros((b, kh, w, h), layer.k.dtype),
                                 jnp.zeros((b, kh, w, h), layer.v.dtype), jnp.full((b, kh, w), -1, jnp.int32),
                                 jnp.zeros((), jnp.int32)))
  return dataclasses.replace(cache, layers=tuple(layers))
