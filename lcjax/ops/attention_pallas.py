"""Registers the Pallas flash-attention kernels (`pallas_kernels.flash_attention`) as `ops.attention` impls.

| impl              | platforms | kernel                                     | backward                              |
|-------------------|-----------|--------------------------------------------|---------------------------------------|
| pallas_triton     | gpu       | `pl.pallas_call` via Triton (pre-Hopper)   | Triton dQ and dK/dV kernels           |
| pallas_tpu        | tpu       | Mosaic TPU, splash-style block skipping    | Mosaic TPU dQ and dK/dV kernels       |
| pallas_mosaic_gpu | gpu sm_90 | Mosaic GPU: TMA, wgmma, pipelined K/V      | Mosaic GPU dQ and dK/dV kernels       |

All three are `interpretable`: with `interpret=True` they run on CPU in their target's Pallas interpreter (Mosaic
GPU needs an abstract Hopper device in scope: `jax.sharding.use_abstract_mesh` with an H100 `AbstractDevice`).
"""

from __future__ import annotations

import jax

import pallas_kernels.flash_attention as fa
from lcjax.errors import ShapeError
from lcjax.ops.attention import ATTENTION_IMPLS
from lcjax.ops.mask import MaskSpec, token_layout


def mask_arrays(mask: MaskSpec, batch: int, q_len: int, kv_len: int) -> dict:
  """A `MaskSpec` as the kernels' keyword arguments (static pattern plus per-token int32 arrays).

  Raises `ShapeError` for LongGen's `sparse_blocks` pattern, which the flash kernels do not implement (the kernels'
  liveness table covers causal/window/sink/segment masks only): use impl='xla_blockwise' or 'reference'."""
  if mask.sparse_blocks is not None:
    raise ShapeError(f"the Pallas flash kernels do not take a sparse_blocks mask {mask.sparse_blocks!r}; use "
                     "impl='xla_blockwise' or 'reference' for LongGen's pattern")
  q_pos, q_seg, kv_pos, kv_seg = token_layout(mask, batch, q_len, kv_len)
  return dict(causal=mask.causal, window=mask.window, sink=mask.sink, q_positions=q_pos, q_segment_ids=q_seg,
              kv_positions=kv_pos, kv_segment_ids=kv_seg)


def _flash_impl(target: str):
  def impl(q, k, v, mask: MaskSpec, *, scale: float, softcap: float | None = None, block_q: int | None = None,
           block_k: int | None = None, interpret: bool = False):
    """Pallas flash attention: q [B, T, N, H], k/v [B, S, K, H] -> [B, T, N, H]."""
    return fa.flash_attention(q, k, v, target=target, scale=scale, softcap=softcap, block_q=block_q,
                              block_k=block_k, interpret=interpret, **mask_arrays(mask, q.shape[0], q.shape[1],
                                                                                 k.shape[1]))

  impl.__name__ = f"attention_pallas_{target}"
  return impl


def hopper_available() -> bool:
  """Whether the default device is an NVIDIA GPU of compute capability >= 9.0 (wgmma, TMA)."""
  device = jax.devices()[0]
  return float(getattr(device, "compute_capability", "0") or 0) >= 9.0


_CAPS = {"grad": True, "interpretable": True}
ATTENTION_IMPLS.register("pallas_triton", _flash_impl("triton"), platforms=("gpu",), caps=_CAPS,
                         doc="Pallas Triton flash attention fwd+bwd (pre-Hopper GPUs; Triton is deprecated in jax)")
ATTENTION_IMPLS.register("pallas_tpu", _flash_impl("tpu"), platforms=("tpu",), caps=_CAPS,
                         doc="Pallas Mosaic TPU flash attention fwd+bwd with splash-style block skipping")
ATTENTION_IMPLS.register("pallas_mosaic_gpu", _flash_impl("mosaic_gpu"), platforms=("gpu",),
                         caps=dict(_CAPS, supported=hopper_available),
                         doc="Pallas Mosaic GPU flash attention fwd+bwd (Hopper: TMA, wgmma, pipelined tiles)")
