"""The paged-offload mechanism: elastic loading, LRU eviction, write-back of dirty pages, double buffering."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import CapacityError, ShapeError
from lcjax.memory.pages import (PageStore, WorkingSet, begin_prefetch, finish_prefetch, flush, plan_slots,
                                prefetch)
from lcjax.memory.tiers import memory_kind_of


def _store(tier="pinned_host", n=6):
  pages = [(np.full((2, 3), p, np.float32), np.full((4,), 10 * p, np.int32)) for p in range(n)]
  return PageStore.create(tier, pages)


def _slot_contents(ws):
  """page id held by each slot according to the data (first element of the first leaf)."""
  return [int(x) for x in np.asarray(ws.slots[0])[:, 0, 0]]


@pytest.mark.parametrize("tier", ["pinned_host", "unpinned_host"])
def test_pages_live_in_the_tier_and_load_exactly(tier):
  store = _store(tier)
  assert {memory_kind_of(x) for x in jax.tree.leaves(store.pages)} == {tier}
  ws = WorkingSet.empty(store.pages[0], 4)
  pending = begin_prefetch(store, ws, [3, 1])
  assert {memory_kind_of(x) for x in jax.tree.leaves(pending.staged)} == {"device"}  # really moved
  ws, store, stats = finish_prefetch(store, ws, pending)
  assert {memory_kind_of(x) for x in jax.tree.leaves(ws.slots)} == {"device"}
  assert (stats.loaded, stats.hits, stats.bytes_loaded) == (2, 0, 2 * store.page_nbytes())
  assert _slot_contents(ws)[:2] == [3, 1] and list(ws.table) == [3, 1, -1, -1]
  np.testing.assert_array_equal(np.asarray(ws.slots[1])[1], np.full(4, 10))
  np.testing.assert_array_equal(np.asarray(ws.slot_page), ws.table)


def test_elastic_loading_moves_only_new_pages_and_lru_evicts():
  store = _store()
  ws = WorkingSet.empty(store.pages[0], 3)
  ws, store, _ = prefetch(store, ws, [0, 1, 2])
  ws, store, stats = prefetch(store, ws, [1, 2])  # all resident: nothing moves
  assert (stats.hits, stats.loaded, stats.bytes_loaded) == (2, 0, 0)
  ws, store, stats = prefetch(store, ws, [2, 4])  # page 0 is least recently used -> evicted
  assert (stats.hits, stats.loaded, stats.evicted) == (1, 1, 1)
  assert sorted(ws.resident()) == [1, 2, 4] and _slot_contents(ws)[ws.resident()[4]] == 4


def test_plan_slots_prefers_empty_then_lru_and_rejects_oversized_requests():
  table, last_use = np.array([5, -1, 7, 9]), np.array([3, 0, 1, 2])
  missing, victims, hits = plan_slots(table, last_use, [9, 11, 12])
  assert missing == [11, 12] and hits == [3] and victims == [1, 2]  # empty slot, then page 7 (LRU)
  with pytest.raises(CapacityError, match="5 pages requested but the working set has 4 slots"):
    plan_slots(table, last_use, [1, 2, 3, 4, 5])


def test_dirty_pages_are_written_back_before_eviction_and_on_flush():
  store = _store()
  ws = WorkingSet.empty(store.pages[0], 2)
  ws, store, _ = prefetch(store, ws, [0, 1])
  slot0 = ws.resident()[0]
  ws = ws.with_slots((ws.slots[0].at[slot0].set(-1.0), ws.slots[1])).mark_dirty([0])
  ws, store, stats = prefetch(store, ws, [1, 2])  # evicts dirty page 0
  assert stats.written_back == 1 and stats.bytes_written_back == store.page_nbytes()
  np.testing.assert_array_equal(np.asarray(store.pages[0][0]), -np.ones((2, 3)))
  assert memory_kind_of(store.pages[0][0]) == "pinned_host"
  ws, store, _ = prefetch(store, ws, [0, 2])  # reloads the written version
  assert float(np.asarray(ws.slots[0])[ws.resident()[0]].sum()) == -6.0
  slot2 = ws.resident()[2]
  ws = ws.with_slots((ws.slots[0].at[slot2].set(7.0), ws.slots[1])).mark_dirty([2])
  ws, store = flush(store, ws)
  np.testing.assert_array_equal(np.asarray(store.pages[2][0]), np.full((2, 3), 7.0))
  assert not ws.dirty.any()
  with pytest.raises(ShapeError, match="page 5 was written but is not resident"):
    ws.mark_dirty([5])


def test_double_buffered_prefetch_installs_after_the_step_that_still_reads_the_victim():
  store = _store()
  ws = WorkingSet.empty(store.pages[0], 2)
  ws, store, _ = prefetch(store, ws, [0, 1])
  pending = begin_prefetch(store, ws, [1, 3])  # slot of page 0 will be reused ...
  step_sum = jax.jit(lambda s: s[0].sum())(ws.slots)  # ... but this step still reads page 0
  ws, store, stats = finish_prefetch(store, ws, pending)
  assert float(step_sum) == 0 * 6 + 1 * 6 and stats.loaded == 1
  assert sorted(ws.resident()) == [1, 3] and _slot_contents(ws)[ws.resident()[3]] == 3


def test_bad_page_ids_and_numpy_tier():
  store = _store()
  ws = WorkingSet.empty(store.pages[0], 2)
  with pytest.raises(ShapeError, match=r"page ids \[9\] not in the store"):
    begin_prefetch(store, ws, [9])
  from lcjax.memory.tiers import Tier
  cxl_like = Tier("cxl", "cxl", 1 << 30, 1e9, 1e9, 1e9, 1e-6, 250e-9, None, (0,))  # numpy buffers bound to node 0
  np_store = PageStore.create(cxl_like, store.pages)
  assert memory_kind_of(np_store.pages[0][0]) == "numpy"
  ws, _, _ = prefetch(np_store, WorkingSet.empty(store.pages[0], 2), [4])
  assert _slot_contents(ws)[0] == 4 and isinstance(ws.slots[0], jax.Array)
  assert jnp.asarray(ws.slots[1]).dtype == jnp.int32
