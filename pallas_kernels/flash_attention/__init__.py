"""Flash attention (forward + custom-VJP backward) on three Pallas targets beside a jnp reference.

Targets: "triton" (`pl.pallas_call` via Triton, pre-Hopper GPUs), "tpu" (Mosaic TPU, (8, 128) tiles, splash-style
block liveness via scalar prefetch), "mosaic_gpu" (Hopper: TMA + wgmma + emit_pipeline, f16/bf16), "reference"
(jnp). Inputs are token-major like `lcjax.ops.attention`.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from pallas_kernels import tuning
from pallas_kernels.flash_attention import gpu_mosaic, gpu_triton, tpu
from pallas_kernels.flash_attention.layout import FlashConfig, from_blocks_layout, pad_heads_major, to_blocks_layout
from pallas_kernels.flash_attention.reference import flash_reference
from pallas_kernels.tile_math import next_power_of_2, round_up


class Target(NamedTuple):
  """A kernel target: forward (and backward) on the padded heads-major layout, and its block-size rule."""

  forward: Callable
  backward: Callable
  blocks: Callable[[int, int, int, int], tuple[int, int]]  # (T, S, block_q, block_k) -> valid (bq, bk)


def _triton_blocks(t, s, bq, bk):
  if bq & (bq - 1) or bk & (bk - 1) or min(bq, bk) < 16:
    raise ValueError(f"triton blocks must be powers of two >= 16, got block_q={bq}, block_k={bk}")
  return min(bq, max(16, next_power_of_2(t))), min(bk, max(16, next_power_of_2(s)))


def _tpu_blocks(t, s, bq, bk):
  if bq % 8 or bk % 128:
    raise ValueError(f"tpu blocks must be multiples of (8, 128), got block_q={bq}, block_k={bk}")
  return (t if t <= bq else bq), (s if s <= bk else bk)  # a block equal to the full dimension is always valid


def _mosaic_blocks(t, s, bq, bk):
  if bq % 64 or bk % 64:
    raise ValueError(f"mosaic_gpu blocks must be multiples of 64 (wgmma tiles), got block_q={bq}, block_k={bk}")
  return bq, min(bk, round_up(s, 64))


TARGETS: dict[str, Target] = {
    "triton": Target(gpu_triton.flash_forward, gpu_triton.flash_backward, _triton_blocks),
    "tpu": Target(tpu.flash_forward, tpu.flash_backward, _tpu_blocks),
    "mosaic_gpu": Target(gpu_mosaic.flash_forward, gpu_mosaic.flash_backward, _mosaic_blocks),
}


def _forward(q, k, v, q_pos, q_seg, kv_pos, kv_seg, target, cfg):
  padded = to_blocks_layout(q, k, v, q_pos, q_seg, kv_pos, kv_seg, cfg.block_q, cfg.block_k)
  out, lse = TARGETS[target].forward(*padded, cfg=cfg)
  return from_blocks_layout(out, q.shape[1]), jnp.swapaxes(lse, 1, 2)[:, :q.shape[1]], (padded, out, lse, kv_pos)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8))
def _flash(q, k, v, q_pos, q_seg, kv_pos, kv_seg, target, cfg):
  return _forward(q, k, v, q_pos, q_seg, kv_pos, kv_seg, target, cfg)[0]


def _flash_fwd(q, k, v, q_pos, q_seg, kv_pos, kv_seg, target, cfg):
  out, _, res = _forward(q, k, v, q_pos, q_seg, kv_pos, kv_seg, target, cfg)
  return out, res


def _flash_bwd(target, cfg, res, d_out):
  (q, k, v, q_pos, q_seg, kv_pos, kv_seg), out, lse, kv_pos_given = res
  t, s = d_out.shape[1], kv_pos_given.shape[1]
  d_out = pad_heads_major(d_out, q.shape[2])
  dq, dk, dv = TARGETS[target].backward(q, k, v, out, lse, d_out, q_pos, q_seg, kv_pos, kv_seg, cfg=cfg)
  return (from_blocks_layout(dq, t), from_blocks_layout(dk, s), from_blocks_layout(dv, s), None, None, None, None)


_flash.defvjp(_flash_fwd, _flash_bwd)


def _layout_args(q, k, q_positions, q_segment_ids, kv_positions, kv_segment_ids):
  """Default positions (queries bottom-right aligned) and segments (all zero) as int32 [B, T] / [B, S]."""
  b, t, s = q.shape[0], q.shape[1], k.shape[1]
  if q_positions is None:
    q_positions = jnp.broadcast_to(s - t + jnp.arange(t, dtype=jnp.int32), (b, t))
  if kv_positions is None:
    kv_positions = jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), (b, s))
  if q_segment_ids is None:
    q_segment_ids, kv_segment_ids = jnp.zeros((b, t), jnp.int32), jnp.zeros((b, s), jnp.int32)
  return tuple(x.astype(jnp.int32) for x in (q_positions, q_segment_ids, kv_positions, kv_segment_ids))


def make_config(q, k, target: str, *, causal=True, window=None, sink=0, scale=None, softcap=None, block_q=None,
                block_k=None, interpret=False) -> FlashConfig:
  """A `FlashConfig` with block sizes from the tuning table (or the given ones) made valid for `target`."""
  if target not in TARGETS:
    raise ValueError(f"unknown flash-attention target {target!r}; known: {sorted(TARGETS)}")
  sizes = tuning.block_sizes("flash_attention", target)
  bq, bk = TARGETS[target].blocks(q.shape[1], k.shape[1], int(block_q or sizes["block_q"]),
                                  int(block_k or sizes["block_k"]))
  scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
  return FlashConfig(bool(causal), window, int(sink), scale, None if softcap is None else float(softcap), bq, bk,
                     bool(interpret))


def flash_attention(q, k, v, *, target: str, causal: bool = True, window: int | None = None, sink: int = 0,
                    q_positions=None, q_segment_ids=None, kv_positions=None, kv_segment_ids=None,
                    scale: float | None = None, softcap: float | None = None, block_q: int | None = None,
                    block_k: int | None = None, interpret: bool = False):
  """Flash attention with a kernel backward pass.

  Args:
    q: [B, T, N, H].  k, v: [B, S, K, H], N a multiple of K (GQA).
    target: "triton", "tpu", "mosaic_gpu" (f16/bf16, H a multiple of 64) or "reference".
    causal, window, sink: mask pattern.  q_positions [B, T], kv_positions [B, S]: absolute positions (default
      bottom-right aligned).  q_segment_ids [B, T], kv_segment_ids [B, S]: document ids.
    scale: default 1/sqrt(H).  softcap: logit soft-cap.  block_q, block_k: tile sizes (default: tuning table).
    interpret: run in the Pallas interpreter (CPU).
  Returns:
    [B, T, N, H] in q's dtype.
  """
  mask = dict(causal=causal, window=window, sink=sink, scale=scale, softcap=softcap)
  layout = dict(q_positions=q_positions, q_segment_ids=q_segment_ids, kv_positions=kv_positions,
                kv_segment_ids=kv_segment_ids)
  if target == "reference":
    return flash_attention_forward(q, k, v, target=target, **mask, **layout)[0]
  cfg = make_config(q, k, target, **mask, block_q=block_q, block_k=block_k, interpret=interpret)
  return _flash(q, k, v, *_layout_args(q, k, *layout.values()), target, cfg)


def flash_attention_forward(q, k, v, *, target: str, **kwargs):
  """Forward only, with the log-sum-exp (for callers that merge partial results or bring their own backward).

  Args:
    q, k, v, target, **kwargs: as `flash_attention`.
  Returns:
    (out [B, T, N, H] in q's dtype, lse [B, T, N] fp32, -inf for rows with no visible key).
  """
  layout_keys = ("q_positions", "q_segment_ids", "kv_positions", "kv_segment_ids")
  layout = _layout_args(q, k, *(kwargs.pop(name, None) for name in layout_keys))
  if target == "reference":
    cfg = make_config(q, k, "triton", **kwargs)
    out, lse = flash_reference(jnp.swapaxes(q, 1, 2), jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2), *layout,
                               cfg=cfg)
    return jnp.swapaxes(out, 1, 2), jnp.swapaxes(lse, 1, 2)
  out, lse, _ = _forward(q, k, v, *layout, target, make_config(q, k, target, **kwargs))
  return out, lse


__all__ = ["FlashConfig", "TARGETS", "flash_attention", "flash_attention_forward", "flash_reference", "make_config"]
