"""Registers the Pallas split-K decode kernels (`pallas_kernels.decode_attention`) as `ops.decode` impls.

| impl          | platforms | kernel                                                          |
|---------------|-----------|-----------------------------------------------------------------|
| pallas_triton | gpu       | Triton gather-block kernel over the dense cache, split-K, GQA   |
| pallas_tpu    | tpu       | Mosaic TPU gather-block kernel, split-K                         |
| pallas_mosaic_gpu | gpu sm_90 | Mosaic GPU gather-block kernel: TMA-gathered blocks, wgmma  |

The kernels take masks made of positions: causal, sliding window, sinks, `q_positions`. Document masks (segment
ids) and explicit `kv_positions` are not supported by them and raise `ShapeError` (use `xla_splitk`). Both are
`interpretable` (run on CPU with `interpret=True`); they have no gradient (decode is inference-only).
"""

from __future__ import annotations

import pallas_kernels.decode_attention as da
from lcjax.errors import ShapeError
from lcjax.ops.attention_pallas import hopper_available
from lcjax.ops.decode import DECODE_IMPLS
from lcjax.ops.mask import MaskSpec


def _decode_impl(target: str):
  def impl(q, k, v, mask: MaskSpec, *, scale: float, softcap: float | None = None, block_size: int = 128,
           num_splits: int | None = None, interpret: bool = False):
    """Pallas split-K decode: q [B, T, N, H], cache [B, K, S, H] -> [B, T, N, H]."""
    if mask.q_segment_ids is not None or mask.kv_positions is not None or mask.sparse_blocks is not None:
      raise ShapeError(f"decode impl pallas_{target} takes causal/window/sink masks with q_positions only; got "
                       "segment ids, kv_positions or sparse_blocks (use impl='xla_splitk' or 'reference')")
    return da.decode_attention(q, k, v, target=target, q_positions=mask.q_positions, causal=mask.causal,
                               window=mask.window, sink=mask.sink, block_size=block_size, scale=scale,
                               softcap=softcap, num_splits=num_splits, interpret=interpret)

  impl.__name__ = f"decode_pallas_{target}"
  return impl


_CAPS = {"grad": False, "interpretable": True}
DECODE_IMPLS.register("pallas_triton", _decode_impl("triton"), platforms=("gpu",), caps=_CAPS,
                      doc="Pallas Triton split-K decode (gather-block kernel), GQA-packed")
DECODE_IMPLS.register("pallas_tpu", _decode_impl("tpu"), platforms=("tpu",), caps=_CAPS,
                      doc="Pallas Mosaic TPU split-K decode (gather-block kernel), GQA-packed")
DECODE_IMPLS.register("pallas_mosaic_gpu", _decode_impl("mosaic_gpu"), platforms=("gpu",),
                      caps=dict(_CAPS, supported=hopper_available),
                      doc="Pallas Mosaic GPU split-K decode (Hopper: TMA block gathers, wgmma), f16/bf16")
