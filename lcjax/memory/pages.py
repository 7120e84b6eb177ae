"""Paged offload: pages live in a tier; a device-resident working set holds the pages a step needs.

  store = PageStore.create(tier).append(page) ...        pages (pytrees of arrays) in pinned/unpinned host or CXL
  ws = WorkingSet.empty(example_page, num_slots, axis)   device slots: every leaf gets a slot axis of size W
  ws, store, stats = prefetch(store, ws, page_ids)       synchronous: fetch missing pages, evict LRU, install

  pending = begin_prefetch(store, ws, next_ids)          double buffering: the host->device copies of the next
  out, slots = step(ws.slots, ...)                       step's pages are dispatched before this step's compute
  ws, store = finish_prefetch(store, ws.with_slots(slots), pending)   and installed after it (on-device scatter)

Elastic loading (SpeContext): only pages not already resident are transferred. Eviction is LRU over slots whose
page the next step does not need; a victim written on device since it was loaded (dirty) is copied back to the
store before its slot is reused. The page table lives on the host (the prefetcher decides there) and on the device
(`slot_page`, read by the step to know which positions each slot holds).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lcjax.errors import CapacityError, ShapeError
from lcjax.memory import tiers
from lcjax.memory.tiers import Tier, place, tier as get_tier


@dataclasses.dataclass(frozen=True)
class PageStore:
  """Pages held in one tier. Each page is a pytree of arrays (for KV: (k, v), each [B, K, C, H]).

  Attributes:
    pages: tuple of page pytrees; page id = index.
    tier: where they live (a JAX host memory kind, or NUMA-bound numpy buffers).
  """

  pages: tuple
  tier: Tier

  @classmethod
  def create(cls, t: Tier | str, pages: Sequence[Any] = ()) -> "PageStore":
    """A store in tier `t`, holding `pages` (moved into the tier)."""
    t = get_tier(t)
    return cls(tuple(place(p, t) for p in pages), t)

  def __len__(self) -> int:
    return len(self.pages)

  def append(self, page) -> "PageStore":
    """Adds a page (moved into the tier) as id len(self)."""
    return dataclasses.replace(self, pages=self.pages + (place(page, self.tier),))

  def set(self, page_id: int, page) -> "PageStore":
    """Replaces page `page_id` (written back from the device)."""
    pages = list(self.pages)
    pages[page_id] = place(page, self.tier)
    return dataclasses.replace(self, pages=tuple(pages))

  def page_nbytes(self) -> int:
    """Bytes of one page (0 for an empty store)."""
    return sum(x.nbytes for x in jax.tree.leaves(self.pages[0])) if self.pages else 0


@dataclasses.dataclass(frozen=True)
class WorkingSet:
  """Device-resident slots for pages, and the page table.

  Attributes:
    slots: pytree like one page, each leaf with an extra slot axis of size W at `axis` (device arrays).
    slot_page: [W] int32 device array, the page in each slot (-1: empty).
    table: [W] host copy of slot_page.  last_use: [W] host LRU clock per slot.  dirty: [W] bool, written on device.
    clock: steps seen.  axis: the slot axis of every leaf.
  """

  slots: Any
  slot_page: jax.Array
  table: np.ndarray
  last_use: np.ndarray
  dirty: np.ndarray
  clock: int
  axis: int

  @classmethod
  def empty(cls, example_page, num_slots: int, axis: int = 0, sharding=None) -> "WorkingSet":
    """W empty slots shaped like `example_page` (a pytree of arrays or ShapeDtypeStructs)."""
    if num_slots < 1:
      raise ShapeError(f"a working set needs at least one slot, got {num_slots}")

    def zeros(x):
      shape = tuple(x.shape[:axis]) + (num_slots,) + tuple(x.shape[axis:])
      return jax.device_put(jnp.zeros(shape, x.dtype), sharding or tiers.device_sharding())

    table = np.full(num_slots, -1, np.int64)
    return cls(jax.tree.map(zeros, example_page), jnp.asarray(table, jnp.int32), table,
               np.zeros(num_slots, np.int64), np.zeros(num_slots, bool), 0, axis)

  @property
  def num_slots(self) -> int:
    return len(self.table)

  def resident(self) -> dict[int, int]:
    """page id -> slot for every resident page."""
    return {int(p): s for s, p in enumerate(self.table) if p >= 0}

  def with_slots(self, slots) -> "WorkingSet":
    """The same table over new slot arrays (a step's output, e.g. after writing new tokens)."""
    return dataclasses.replace(self, slots=slots)

  def mark_dirty(self, page_ids) -> "WorkingSet":
    """Records that the step wrote into these resident pages (they are copied back before eviction)."""
    res = self.resident()
    dirty = self.dirty.copy()
    for p in page_ids:
      if int(p) not in res:
        raise ShapeError(f"page {int(p)} was written but is not resident; resident: {sorted(res)}")
      dirty[res[int(p)]] = True
    return dataclasses.replace(self, dirty=dirty)


@dataclasses.dataclass(frozen=True)
class PrefetchStats:
  """What one prefetch did: pages asked for, found resident (hits), transferred, evicted, written back; bytes."""

  requested: int
  hits: int
  loaded: int
  evicted: int
  written_back: int
  bytes_loaded: int
  bytes_written_back: int


@dataclasses.dataclass(frozen=True)
class Pending:
  """Transfers in flight for the next step: pages `loaded` go to `slots` (device arrays in `staged`)."""

  loaded: tuple[int, ...]
  slots: tuple[int, ...]
  staged: tuple
  table: np.ndarray
  last_use: np.ndarray
  stats: PrefetchStats


def plan_slots(table: np.ndarray, last_use: np.ndarray, wanted: Sequence[int]):
  """Which wanted pages must be loaded and into which slots (pure; the prefetcher's decision).

  Elastic loading: pages already in a slot are hits. Victims: empty slots first, then the least recently used
  slots among those holding pages not wanted now.
  Returns:
    (missing page ids, victim slots, slots of the hits), in matching order.
  Raises:
    CapacityError: more distinct pages wanted than there are slots.
  """
  wanted = list(dict.fromkeys(int(p) for p in wanted))
  if len(wanted) > len(table):
    raise CapacityError(f"{len(wanted)} pages requested but the working set has {len(table)} slots; "
                        f"raise num_slots or request fewer pages")
  where = {int(p): s for s, p in enumerate(table) if p >= 0}
  missing = [p for p in wanted if p not in where]
  hit_slots = [where[p] for p in wanted if p in where]
  keep = set(hit_slots)
  free = [s for s in range(len(table)) if s not in keep]
  free.sort(key=lambda s: (table[s] >= 0, last_use[s], s))  # empty first, then LRU
  return missing, free[:len(missing)], hit_slots


def begin_prefetch(store: PageStore, ws: WorkingSet, page_ids: Sequence[int], device_sharding=None) -> Pending:
  """Dispatches the host->device copies of the wanted pages that are not resident (asynchronous).

  Args:
    store: where pages live.  ws: the working set the next step will use.  page_ids: pages that step needs.
    device_sharding: placement of the staged pages (default: the first device's own memory).
  Returns:
    A `Pending` to hand to `finish_prefetch` once the current step has been dispatched.
  """
  bad = [int(p) for p in page_ids if not 0 <= int(p) < len(store)]
  if bad:
    raise ShapeError(f"page ids {bad[:5]} not in the store (it holds pages 0..{len(store) - 1})")
  missing, victims, hit_slots = plan_slots(ws.table, ws.last_use, page_ids)
  target = device_sharding or tiers.device_sharding()
  staged = tuple(jax.device_put([store.pages[p] for p in missing], target)) if missing else ()
  table, last_use = ws.table.copy(), ws.last_use.copy()
  evicted = sum(1 for s in victims if table[s] >= 0)
  table[victims] = missing
  last_use[list(hit_slots) + list(victims)] = ws.clock + 1
  nbytes = store.page_nbytes()
  stats = PrefetchStats(len(set(int(p) for p in page_ids)), len(hit_slots), len(missing), evicted, 0,
                        nbytes * len(missing), 0)  # write-backs are counted when they happen (finish)
  return Pending(tuple(missing), tuple(victims), staged, table, last_use, stats)


def _bucket(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("axis",), donate_argnames=("slots",))
def _install(slots, pages, slot_ids, *, axis: int):
  """slots[..., slot_ids[i], ...] = pages[i] along `axis` for every leaf (pages stacked on a new leading axis)."""

  def put(s, p):
    p = jnp.moveaxis(p, 0, axis)
    idx = (slice(None),) * axis + (slot_ids,)
    return s.at[idx].set(p.astype(s.dtype))

  return jax.tree.map(put, slots, pages)


@functools.partial(jax.jit, static_argnames=("axis",))
def _take_slots(slots, slot_ids, *, axis: int):
  return jax.tree.map(lambda s: jnp.take(s, slot_ids, axis=axis), slots)


def _write_back(store: PageStore, ws: WorkingSet, dirty_slots: list[int]) -> PageStore:
  """Copies the pages in `dirty_slots` from the device back into the store (device -> tier, asynchronous)."""
  if not dirty_slots:
    return store
  back = _take_slots(ws.slots, jnp.asarray(dirty_slots, jnp.int32), axis=ws.axis)
  for i, s in enumerate(dirty_slots):
    store = store.set(int(ws.table[s]), jax.tree.map(lambda x: jnp.take(x, i, axis=ws.axis), back))
  return store


def finish_prefetch(store: PageStore, ws: WorkingSet, pending: Pending):
  """Writes dirty victims back to the store, then installs the staged pages into their slots.

  Args:
    store: the page store.  ws: the working set after the current step (its slots may hold new writes).
    pending: from `begin_prefetch`.
  Returns:
    (working set for the next step, store with written-back pages, PrefetchStats).
  """
  victims = list(pending.slots)
  dirty = [s for s in victims if ws.dirty[s]]
  store = _write_back(store, ws, dirty)  # before the slots are overwritten
  stats = dataclasses.replace(pending.stats, written_back=len(dirty),
                              bytes_written_back=len(dirty) * store.page_nbytes())
  slots = ws.slots
  if victims:
    n = _bucket(len(victims))  # few compiled shapes; padding repeats the first (page, slot) pair
    pad = [0] * (n - len(victims))
    pages = jax.tree.map(lambda *xs: jnp.stack(xs), *[pending.staged[i] for i in list(range(len(victims))) + pad])
    slot_ids = jnp.asarray(victims + [victims[0]] * len(pad), jnp.int32)
    slots = _install(slots, pages, slot_ids, axis=ws.axis)
  dirty_mask = ws.dirty.copy()
  dirty_mask[victims] = False
  new = WorkingSet(slots, jnp.asarray(pending.table, jnp.int32), pending.table, pending.last_use, dirty_mask,
                   ws.clock + 1, ws.axis)
  return new, store, stats


def prefetch(store: PageStore, ws: WorkingSet, page_ids: Sequence[int], device_sharding=None):
  """Makes `page_ids` resident (synchronous form of begin/finish). Returns (working set, store, PrefetchStats)."""
  return finish_prefetch(store, ws, begin_prefetch(store, ws, page_ids, device_sharding))


def flush(store: PageStore, ws: WorkingSet) -> tuple[WorkingSet, PageStore]:
  """Copies every dirty resident page back to the store (e.g. before handing the cache elsewhere)."""
  store = _write_back(store, ws, [s for s in range(ws.num_slots) if ws.dirty[s]])
  return dataclasses.replace(ws, dirty=np.zeros_like(ws.dirty)), store
