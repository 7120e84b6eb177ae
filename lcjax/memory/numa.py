"""NUMA topology from sysfs and page binding through libnuma's `mbind` (ctypes).

A CXL Type-3 memory expander (an add-in card, AIC) appears to Linux as a NUMA node that has memory but no CPUs;
`detect_nodes` reads that from /sys/devices/system/node. `numa_buffer` allocates an anonymous mapping, binds its
pages to one node (`MPOL_BIND`) or stripes them over several nodes in fixed-size chunks (one `mbind` per chunk, so
each AIC serves an equal share of the bandwidth), then touches every page so it is faulted in where it was bound.
Without libnuma (or on a machine with one node) binding is a logged no-op and the buffer follows the default policy.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import mmap
import os
import re

import numpy as np

log = logging.getLogger(__name__)

SYSFS_NODES = "/sys/devices/system/node"
MPOL_BIND = 2
MPOL_MF_STRICT, MPOL_MF_MOVE = 1, 2
MPOL_F_NODE, MPOL_F_ADDR = 1, 2
PAGE = mmap.PAGESIZE


@dataclasses.dataclass(frozen=True)
class NumaNode:
  """One NUMA node: its id, CPUs (empty for a CPU-less memory node such as a CXL expander) and memory size."""

  node: int
  cpus: tuple[int, ...]
  mem_bytes: int

  @property
  def cpu_less(self) -> bool:
    return not self.cpus


def _parse_cpulist(text: str) -> tuple[int, ...]:
  """'0-3,8,10-11' -> (0, 1, 2, 3, 8, 10, 11)."""
  cpus: list[int] = []
  for part in text.strip().split(","):
    if not part:
      continue
    lo, _, hi = part.partition("-")
    cpus.extend(range(int(lo), int(hi or lo) + 1))
  return tuple(cpus)


def _mem_total(node_dir: str) -> int:
  try:
    with open(os.path.join(node_dir, "meminfo")) as f:
      for line in f:
        m = re.search(r"MemTotal:\s+(\d+)\s*kB", line)
        if m:
          return int(m.group(1)) * 1024
  except OSError:
    pass
  return 0


def detect_nodes(root: str = SYSFS_NODES) -> list[NumaNode]:
  """NUMA nodes listed under `root` (sysfs layout: node<N>/cpulist, node<N>/meminfo), sorted by id.

  Returns an empty list when `root` does not exist (not Linux, or sysfs not mounted).
  """
  if not os.path.isdir(root):
    return []
  nodes = []
  for name in os.listdir(root):
    m = re.fullmatch(r"node(\d+)", name)
    if not m:
      continue
    path = os.path.join(root, name)
    try:
      with open(os.path.join(path, "cpulist")) as f:
        cpus = _parse_cpulist(f.read())
    except OSError:
      cpus = ()
    nodes.append(NumaNode(int(m.group(1)), cpus, _mem_total(path)))
  return sorted(nodes, key=lambda n: n.node)


@functools.lru_cache(maxsize=None)
def libnuma():
  """The loaded libnuma (ctypes.CDLL) if it is installed and the kernel supports NUMA, else None."""
  try:
    lib = ctypes.CDLL("libnuma.so.1", use_errno=True)
  except OSError:
    return None
  if lib.numa_available() < 0:
    return None
  lib.mbind.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.POINTER(ctypes.c_ulong),
                        ctypes.c_ulong, ctypes.c_uint]
  lib.mbind.restype = ctypes.c_long
  lib.get_mempolicy.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_ulong), ctypes.c_ulong,
                                ctypes.c_void_p, ctypes.c_ulong]
  lib.get_mempolicy.restype = ctypes.c_long
  return lib


_warned: set[str] = set()


def _warn_once(msg: str) -> None:
  if msg not in _warned:
    _warned.add(msg)
    log.warning(msg)


def _address(arr: np.ndarray) -> int:
  return arr.__array_interface__["data"][0]


def bind(arr: np.ndarray, nodes: tuple[int, ...], stripe_bytes: int = 1 << 21) -> bool:
  """Binds the pages of a page-aligned buffer to `nodes`: one node -> all pages there; several -> chunks of
  `stripe_bytes` round-robin over the nodes (striping). Returns True if bound, False for the logged no-op.

  Args:
    arr: a C-contiguous array whose data starts on a page boundary (as `numa_buffer` makes).
    nodes: NUMA node ids (non-empty).  stripe_bytes: chunk size for striping (a multiple of the page size).
  """
  lib = libnuma()
  if lib is None:
    _warn_once("NUMA binding unavailable (no libnuma or no kernel NUMA support): buffers use the default policy")
    return False
  known = {n.node for n in detect_nodes()}
  missing = [n for n in nodes if n not in known]
  if missing:
    _warn_once(f"NUMA node(s) {missing} not present (nodes here: {sorted(known)}): binding skipped")
    return False
  start, size = _address(arr), arr.nbytes
  if start % PAGE:
    raise ValueError("bind needs a page-aligned buffer; allocate it with numa_buffer")
  stripe = max(PAGE, stripe_bytes // PAGE * PAGE)
  chunks = [(start, size)] if len(nodes) == 1 else [
      (start + off, min(stripe, size - off)) for off in range(0, size, stripe)]
  for i, (addr, length) in enumerate(chunks):
    node = nodes[i % len(nodes)]
    mask = (ctypes.c_ulong * (node // 64 + 1))()
    mask[node // 64] = 1 << (node % 64)
    rc = lib.mbind(addr, -(-length // PAGE) * PAGE, MPOL_BIND, mask, len(mask) * 64 + 1,
                   MPOL_MF_STRICT | MPOL_MF_MOVE)
    if rc != 0:
      _warn_once(f"mbind to node {node} failed (errno {ctypes.get_errno()}): binding skipped")
      return False
  return True


def page_node(arr: np.ndarray, offset: int = 0) -> int | None:
  """The NUMA node currently holding the page at byte `offset` of `arr` (None without libnuma)."""
  lib = libnuma()
  if lib is None:
    return None
  node = ctypes.c_int(-1)
  rc = lib.get_mempolicy(ctypes.byref(node), None, 0, _address(arr) + offset, MPOL_F_NODE | MPOL_F_ADDR)
  return node.value if rc == 0 else None


def numa_buffer(shape: tuple[int, ...], dtype, nodes: tuple[int, ...] = (), stripe_bytes: int = 1 << 21
                ) -> np.ndarray:
  """A zero-filled host array whose pages live on `nodes` (striped when several); unbound when `nodes` is empty.

  Args:
    shape, dtype: of the array.  nodes: NUMA node ids.  stripe_bytes: striping chunk.
  Returns:
    np.ndarray backed by an anonymous mmap (page aligned), pages already faulted in.
  """
  dtype = np.dtype(dtype)
  nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  buf = mmap.mmap(-1, max(PAGE, -(-nbytes // PAGE) * PAGE), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
  arr = np.frombuffer(buf, dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)
  if nodes:
    bind(arr, tuple(nodes), stripe_bytes)
  arr.reshape(-1).view(np.uint8)[::PAGE] = 0  # first touch: fault every page in under the bound policy
  return arr
