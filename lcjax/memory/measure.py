"""Timing real copies on this machine: a tier's bandwidths and latency, and the host's FLOP/s.

`measure(tier)` moves buffers between the tier and the accelerator with `jax.device_put` (memory kinds) or from
NUMA-bound numpy buffers, takes the best of a few repeats (the machine may be shared) and returns the tier with
`to_device_bw`, `from_device_bw`, `cpu_bw` and `latency_s` replaced by what it saw.
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lcjax.memory.tiers import Tier, device_sharding, place, sharding_for, tier


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
  """Best wall time of `repeats` calls of `fn` (each blocks until its result is ready)."""
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t0)
  return best


def _copy_fns(t: Tier, nbytes: int):
  """(to_device, from_device, cpu_stream) closures moving `nbytes` for tier `t`."""
  n = max(1, nbytes // 4)
  host = place(np.ones(n, np.float32), t)
  dev_s = device_sharding()
  on_device = jax.device_put(jnp.ones(n, jnp.float32), dev_s)
  if t.kind == "device":
    copy = jax.jit(lambda x: x + 0.0)  # HBM read + write
    return (lambda: copy(on_device)), (lambda: copy(on_device)), (lambda: copy(on_device))
  s = sharding_for(t)
  if s is not None:  # a JAX memory kind: device_put both ways
    to_dev = lambda: jax.device_put(host, dev_s)  # noqa: E731
    from_dev = lambda: jax.device_put(on_device, s)  # noqa: E731
  else:
    to_dev = lambda: jax.device_put(host, dev_s)  # noqa: E731
    out = place(np.zeros(n, np.float32), t)
    from_dev = lambda: np.copyto(out, np.asarray(on_device))  # noqa: E731
  buf = host if isinstance(host, np.ndarray) else np.array(host)  # local DRAM for the JAX host kinds
  stream = lambda: np.add(buf, 1.0, out=buf)  # noqa: E731  (CPU reads and writes every byte)
  return to_dev, from_dev, stream


def measure(t: Tier | str, nbytes: int = 32 << 20, small_bytes: int = 4096, repeats: int = 5) -> Tier:
  """Times copies between tier `t` and the accelerator and a CPU pass over the tier.

  Args:
    t: tier (or name).  nbytes: size of the bandwidth transfers.  small_bytes: size of the latency transfers.
    repeats: best-of count.
  Returns:
    The tier with measured `to_device_bw`, `from_device_bw` (bytes/s; for `device` an on-device copy counting
    read+write), `cpu_bw` (read+write bytes/s of a numpy pass) and `latency_s` (a `small_bytes` transfer).
  """
  t = tier(t)
  to_dev, from_dev, stream = _copy_fns(t, nbytes)
  small_to_dev, _, _ = _copy_fns(t, small_bytes)
  for fn in (to_dev, from_dev, stream, small_to_dev):  # compile / fault in
    jax.block_until_ready(fn())
  latency = _best_seconds(small_to_dev, repeats * 4)
  moved = 2 * nbytes if t.kind == "device" else nbytes
  bw = lambda secs: moved / max(secs - latency, 1e-9)  # noqa: E731
  return t.replace(to_device_bw=bw(_best_seconds(to_dev, repeats)),
                   from_device_bw=bw(_best_seconds(from_dev, repeats)),
                   cpu_bw=2 * nbytes / max(_best_seconds(stream, repeats), 1e-9),
                   latency_s=latency)


def measure_flops(n: int = 1024, repeats: int = 5, dtype=jnp.float32) -> float:
  """FLOP/s of an n x n matmul on the default device (2 n^3 FLOPs per product)."""
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda x: x @ x)
  jax.block_until_ready(f(a))
  return 2 * n**3 / _best_seconds(lambda: f(a), repeats)
