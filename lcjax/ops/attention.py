"""`lcjax.ops.attention`: one API, many implementations, chosen by name or by platform.

Implementations register in `ATTENTION_IMPLS` with the platforms they run on. `impl="auto"` resolves through
`AUTO_TABLE` (first registered, runnable entry for the current platform wins) and logs its choice once;
`LCJAX_FORCE_REFERENCE=1` makes `auto` pick `reference`. Asking for a named impl that cannot run here raises
`ImplUnavailableError` listing what can.

| platform | auto order                                              |
|----------|---------------------------------------------------------|
| cpu      | xla_blockwise                                           |
| gpu      | pallas_mosaic_gpu (sm_90), pallas_triton, xla_blockwise |
| tpu      | pallas_tpu, xla_blockwise                               |
"""

from __future__ import annotations

import logging
import math
import os
from typing import Callable

import jax
import jax.numpy as jnp

from lcjax.errors import ImplUnavailableError, ShapeError
from lcjax.ops.attention_blockwise import attention_blockwise
from lcjax.ops.attention_reference import attention_reference
from lcjax.ops.mask import CAUSAL, MaskSpec, validate_mask
from lcjax.registry import Registry

log = logging.getLogger(__name__)

ATTENTION_IMPLS: Registry[Callable] = Registry("attention impl")
ATTENTION_IMPLS.register("reference", attention_reference, caps={"grad": True},
                         doc="materialises scores; exact oracle, O(T*S) memory")
ATTENTION_IMPLS.register("xla_blockwise", attention_blockwise, caps={"grad": True},
                         doc="online softmax over key blocks in XLA, O(T) memory, custom VJP")

AUTO_TABLE: dict[str, tuple[str, ...]] = {
    "cpu": ("xla_blockwise",),
    "gpu": ("pallas_mosaic_gpu", "pallas_triton", "xla_blockwise"),
    "tpu": ("pallas_tpu", "xla_blockwise"),
}

_logged_choices: set[tuple[str, str]] = set()


def current_platform() -> str:
  """The default backend's platform name: `cpu`, `gpu` or `tpu`."""
  platform = jax.default_backend()
  return "gpu" if platform in ("cuda", "rocm") else platform


def runs_here(entry, platform: str, options: dict) -> bool:
  """Whether a registry entry can run on `platform` (interpretable kernels run anywhere with interpret=)."""
  if entry.platforms is None or platform in entry.platforms:
    supported = entry.caps.get("supported")
    return supported is None or supported()
  return bool(options.get("interpret")) and entry.caps.get("interpretable", False)


def resolve_impl(registry: Registry, table: dict[str, tuple[str, ...]], impl: str, options: dict) -> str:
  """Turns `impl` ("auto" or a name) into a registered name that runs on this platform, or raises."""
  platform = current_platform()
  if impl == "auto":
    if os.environ.get("LCJAX_FORCE_REFERENCE") == "1":
      return "reference"
    for name in table.get(platform, ()) + ("reference",):
      if name in registry and runs_here(registry.entry(name), platform, options):
        if (registry.kind, name) not in _logged_choices:
          _logged_choices.add((registry.kind, name))
          log.info("%s auto -> %s on %s", registry.kind, name, platform)
        return name
  entry = registry.entry(impl)
  if not runs_here(entry, platform, options):
    here = [e.name for e in registry.entries() if runs_here(e, platform, {})]
    raise ImplUnavailableError(
        f"{registry.kind} {impl!r} runs on {', '.join(entry.platforms or ())}, not on {platform}"
        f"{' (it can be interpreted: pass interpret=True)' if entry.caps.get('interpretable') else ''}; "
        f"impls that run here: {', '.join(here)}")
  return impl


def check_qkv(q, k, v) -> None:
  """Raises `ShapeError` unless q is [B, T, N, H] and k, v are [B, S, K, H] with N % K == 0."""
  if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
    raise ShapeError(f"attention expects q [B, T, N, H] and k, v [B, S, K, H]; got ndim {q.ndim}, {k.ndim}, "
                     f"{v.ndim}")
  if k.shape != v.shape:
    raise ShapeError(f"k and v must have the same shape, got {k.shape} and {v.shape}")
  if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
    raise ShapeError(f"q {q.shape} and k {k.shape} disagree on batch (B) or head dim (H)")
  if q.shape[2] % k.shape[2]:
    raise ShapeError(f"query heads N={q.shape[2]} must be a multiple of kv heads K={k.shape[2]}")
  for name, x in (("q", q), ("k", k), ("v", v)):
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ShapeError(f"{name} must be floating point, got {x.dtype}")


def attention(q: jax.Array, k: jax.Array, v: jax.Array, *, mask: MaskSpec = CAUSAL, impl: str = "auto",
              scale: float | None = None, softcap: float | None = None, **options) -> jax.Array:
  """Multi-head attention with grouped KV heads.

  Args:
    q: [B, T, N, H] queries.
    k, v: [B, S, K, H] keys and values; N must be a multiple of K (query head n uses kv head n // (N // K)).
    mask: a `MaskSpec` (causal, sliding window, sinks, segment ids, positions).
    impl: "auto" or a name from `ATTENTION_IMPLS.names()`.
    scale: softmax scale, default 1/sqrt(H).
    softcap: optional logit soft-cap.
    **options: impl-specific static options (block sizes, `interpret=`).
  Returns:
    [B, T, N, H] in q's dtype.
  """
  check_qkv(q, k, v)
  validate_mask(mask, q.shape[0], q.shape[1], k.shape[1])
  name = resolve_impl(ATTENTION_IMPLS, AUTO_TABLE, impl, options)
  scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
  return ATTENTION_IMPLS.get(name)(q, k, v, mask, scale=scale, softcap=softcap, **options)
