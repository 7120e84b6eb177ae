"""Shared plumbing of the lightning-attention kernels: static config, padded heads-major layout, block metadata.

Every target sees q, k, v as [B, N, Tp, H] (GQA kv heads repeated to the N query heads, since every query head has
its own decay and therefore its own state), T zero-padded to a multiple of the block C, and per-token run ids
[B, Tp] (padding continues the last run, and zero k/v keep it out of every product). Per block it needs the run
before the block, the run of its last real token, and how many rows are real.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from pallas_kernels.tile_math import round_up


@dataclasses.dataclass(frozen=True)
class LightningConfig:
  """Static parameters of one call (hashable: a custom_vjp nondiff argument).

  Attributes:
    length: T, the real tokens per row.  block: C, tokens per block.  interpret: run in the Pallas interpreter.
  """

  length: int
  block: int
  interpret: bool = False

  @property
  def padded(self) -> int:
    """Tp, T rounded up to the block."""
    return round_up(self.length, self.block)

  @property
  def num_blocks(self) -> int:
    """U, blocks per row."""
    return self.padded // self.block


def runs_of(segment_ids, batch: int, length: int):
  """Run ids [B, T] int32: 0 for the first document of a row, +1 at every change of segment id.

  Args:
    segment_ids: [B, T] int document ids (contiguous runs, as packing gives) or None (one document per row).
  """
  if segment_ids is None:
    return jnp.zeros((batch, length), jnp.int32)
  seg = segment_ids.astype(jnp.int32)
  change = jnp.concatenate([jnp.zeros((batch, 1), jnp.int32), (seg[:, 1:] != seg[:, :-1]).astype(jnp.int32)], 1)
  return jnp.cumsum(change, axis=1, dtype=jnp.int32)


def to_heads_major(x, num_heads: int, padded: int):
  """[B, T, X, H] -> [B, N, Tp, H]: kv heads repeated to N (head n reads kv head n // (N / X)), zero-padded."""
  x = jnp.repeat(x, num_heads // x.shape[2], axis=2)
  x = jnp.pad(x, ((0, 0), (0, padded - x.shape[1]), (0, 0), (0, 0)))
  return jnp.swapaxes(x, 1, 2)


def pad_runs(runs, padded: int):
  """[B, T] -> [B, Tp], padding repeating the last run."""
  return jnp.pad(runs, ((0, 0), (0, padded - runs.shape[1])), mode="edge")


def block_meta(runs, cfg: LightningConfig):
  """Per-block scalars from padded runs [B, Tp].

  Returns:
    (run_prev [B, U], run_last [B, U], m [U]) int32: the run before each block (the first block: the row's first
    run, so an initial state belongs to the first document), the run of its last real token, its real rows.
  """
  c, u = cfg.block, cfg.num_blocks
  starts = jnp.arange(u) * c
  run_prev = runs[:, jnp.maximum(starts - 1, 0)]
  m = jnp.minimum(c, cfg.length - starts).astype(jnp.int32)
  run_last = runs[:, starts + m - 1]
  return run_prev, run_last, m


def from_heads_major(x, length: int):
  """[B, N, Tp, H] -> [B, T, N, H]."""
  return jnp.swapaxes(x, 1, 2)[:, :length]
