"""Block sizes per kernel, target and device kind, with a safe default.

`block_sizes(kernel, target)` looks the current device kind up (prefix match on `jax.devices()[0].device_kind`,
e.g. "NVIDIA H100 80GB HBM3", "TPU v5 lite") and falls back to the target's default row. Values were chosen from
the published choices of JAX's own kernels for these chips (not tuned on hardware here: no GPU/TPU machine was
available when this table was written); callers may override any entry with explicit keyword arguments.

| kernel          | target     | device kind prefix | sizes                                   |
|-----------------|------------|--------------------|-----------------------------------------|
| flash_attention | triton     | default            | block_q 64, block_k 64                  |
| flash_attention | triton     | NVIDIA A100        | block_q 128, block_k 64                 |
| flash_attention | mosaic_gpu | default            | block_q 64, block_k 64                  |
| flash_attention | mosaic_gpu | NVIDIA H100 / H200 | block_q 64 (per warpgroup), block_k 128 |
| flash_attention | tpu        | default            | block_q 128, block_k 128                |
| flash_attention | tpu        | TPU v5 / v6        | block_q 512, block_k 512                |
| gather_blocks   | triton     | default            | num_splits 8                            |
| gather_blocks   | tpu        | default            | num_splits 2 (megacore halves)          |
"""

from __future__ import annotations

import jax

_TABLE: dict[tuple[str, str], dict[str, dict[str, int]]] = {
    ("flash_attention", "triton"): {"default": dict(block_q=64, block_k=64),
                                    "NVIDIA A100": dict(block_q=128, block_k=64)},
    ("flash_attention", "mosaic_gpu"): {"default": dict(block_q=64, block_k=64),
                                        "NVIDIA H100": dict(block_q=64, block_k=128),
                                        "NVIDIA H200": dict(block_q=64, block_k=128)},
    ("flash_attention", "tpu"): {"default": dict(block_q=128, block_k=128),
                                 "TPU v5": dict(block_q=512, block_k=512),
                                 "TPU v6": dict(block_q=512, block_k=512)},
    ("gather_blocks", "triton"): {"default": dict(num_splits=8)},
    ("gather_blocks", "mosaic_gpu"): {"default": dict(num_splits=8)},
    ("gather_blocks", "tpu"): {"default": dict(num_splits=2)},
}


def device_kind() -> str:
  """The first device's kind string ("cpu" on this machine)."""
  return jax.devices()[0].device_kind


def block_sizes(kernel: str, target: str, kind: str | None = None) -> dict[str, int]:
  """Tuned sizes for `kernel` on `target` for device `kind` (default: the current device), else the default row.

  Args:
    kernel: "flash_attention" or "gather_blocks".  target: "triton", "mosaic_gpu" or "tpu".
  Returns:
    A fresh dict of sizes.
  Raises:
    KeyError naming the known (kernel, target) pairs.
  """
  rows = _TABLE.get((kernel, target))
  if rows is None:
    raise KeyError(f"no block-size table for {(kernel, target)}; known: {sorted(_TABLE)}")
  kind = device_kind() if kind is None else kind
  for prefix, sizes in rows.items():
    if prefix != "default" and kind.startswith(prefix):
      return dict(sizes)
  return dict(rows["default"])
