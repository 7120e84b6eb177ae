"""`lcjax.ops.block_sparse`: a few queries over selected key blocks of a heads-major KV cache.

The attention step of KV methods that pick blocks/pages per (batch, kv head): LongGen patterns, Squeezed
Attention, Quest / RetroLM page retrieval, LongHeads chunk selection. Block i of the cache holds keys
[i * block_size, (i + 1) * block_size); `block_indices[b, k, :block_counts[b, k]]` are the (distinct) blocks kv head
k of sequence b attends to. Options: `q_positions` [B, T] (causal within the selection when given), `kv_lengths`
[B] (keys at positions >= length are hidden; default S), `num_splits` (split-K), `interpret`, `return_lse`.

`return_lse=True` returns `(out, lse)`: lse [B, T, N] fp32 is the natural log-sum-exp of the scaled (soft-capped)
visible scores, -inf (and out 0) for a row that sees no key. Every impl computes it with its softmax: reference and
xla from the one masked softmax, the Pallas kernels from their final running max / sum, merged across split-K
parts (`merge_partials`). Sink-KV rescales by a zero-value slot with it: out * sigmoid(lse - s_sink). The lse is
differentiable (wrt q, k) for the impls with the "grad" cap (reference, xla) only, like the output.

| impl          | platforms | how                                                               |
|---------------|-----------|-------------------------------------------------------------------|
| reference     | all       | gathers the selected keys (`take_along_axis`), one softmax; grads |
| xla           | all       | the whole cache with a block-membership mask (no gather); grads   |
| pallas_triton | gpu       | Triton gather-block kernel, split-K (interpretable)               |
| pallas_tpu    | tpu       | Mosaic TPU gather-block kernel, scalar-prefetched indices         |
| pallas_mosaic_gpu | gpu sm_90 | Mosaic GPU gather-block kernel (TMA gathers, wgmma), f16/bf16 |

| platform | auto order          |
|----------|---------------------|
| cpu      | reference           |
| gpu      | pallas_mosaic_gpu (sm_90), pallas_triton, reference, xla |
| tpu      | pallas_tpu, reference, xla |

"auto" skips a kernel whose tiling the call does not fit (`kernel_fits`: Mosaic GPU f16/bf16 with C and H multiples
of 64 and G*T <= 64 rows; Triton C a multiple of 16; TPU C a multiple of 8), so token-level selections (C = 1) take
the reference gather, which reads only the selected keys (xla reads the whole cache under a mask). An impl asked
for by name is never replaced.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp

import pallas_kernels.block_sparse as bs
from lcjax.errors import ImplUnavailableError, ShapeError
from lcjax.ops.attention import check_qkv, resolve_impl
from lcjax.ops.attention_pallas import hopper_available
from lcjax.registry import Registry

BLOCK_SPARSE_IMPLS: Registry[Callable] = Registry("block-sparse impl")

AUTO_TABLE: dict[str, tuple[str, ...]] = {
    "cpu": ("reference",),
    "gpu": ("pallas_mosaic_gpu", "pallas_triton", "reference", "xla"),
    "tpu": ("pallas_tpu", "reference", "xla"),
}


def kernel_fits(name: str, q_dtype, head_dim: int, rows: int, block_size: int) -> bool:
  """Whether a call (q dtype, H, packed rows G*T, block size C) fits kernel `name`'s tiling (jnp impls: always)."""
  if name == "pallas_mosaic_gpu":
    return bs.gpu_mosaic.fits(q_dtype, rows, block_size, head_dim)
  if name == "pallas_triton":
    return block_size % 16 == 0
  if name == "pallas_tpu":
    return block_size % 8 == 0
  return True


def auto_table(q_dtype, head_dim: int, rows: int, block_size: int) -> dict[str, tuple[str, ...]]:
  """`AUTO_TABLE` without the kernels this call does not fit."""
  return {p: tuple(n for n in names if kernel_fits(n, q_dtype, head_dim, rows, block_size))
          for p, names in AUTO_TABLE.items()}


def _no_gradient(fn: Callable, name: str) -> Callable:
  """fn(*arrays), raising a clear error when differentiated (the gather-block kernels have no backward)."""

  @jax.custom_vjp
  def call(*args):
    return fn(*args)

  def fwd(*args):
    raise ImplUnavailableError(f"block-sparse impl {name!r} has no gradient (out or lse); differentiate with "
                               f"impl='reference' or 'xla'")

  call.defvjp(fwd, lambda res, g: None)
  return call


def _kernel_impl(target: str):
  def impl(q, k, v, block_indices, block_counts, *, block_size, scale, softcap=None, q_positions=None,
           kv_lengths=None, num_splits=None, interpret=False, return_lse=False):
    """Pallas gather-block kernel: q [B, T, N, H], cache [B, K, S, H] -> [B, T, N, H] (, lse [B, T, N])."""
    kernel = functools.partial(bs.block_sparse_attention, block_size=block_size, target=target, scale=scale,
                               softcap=softcap, num_splits=num_splits, interpret=interpret, return_lse=return_lse)
    run = lambda q, k, v, ids, counts, q_pos, kv_len: kernel(  # noqa: E731
        q, k, v, ids, counts, q_positions=q_pos, kv_lengths=kv_len)
    return _no_gradient(run, f"pallas_{target}")(q, k, v, block_indices, block_counts, q_positions, kv_lengths)

  impl.__name__ = f"block_sparse_pallas_{target}"
  return impl


@BLOCK_SPARSE_IMPLS.register("reference", caps={"grad": True})
def block_sparse_reference(q, k, v, block_indices, block_counts, *, block_size, scale, softcap=None,
                           q_positions=None, kv_lengths=None, return_lse=False):
  """Gathers the selected blocks, then one masked softmax: q [B, T, N, H], cache [B, K, S, H] -> [B, T, N, H]."""
  return bs.block_sparse_attention(q, k, v, block_indices, block_counts, block_size=block_size, target="reference",
                                   q_positions=q_positions, kv_lengths=kv_lengths, scale=scale, softcap=softcap,
                                   return_lse=return_lse)


@BLOCK_SPARSE_IMPLS.register("xla", caps={"grad": True})
def block_sparse_xla(q, k, v, block_indices, block_counts, *, block_size, scale, softcap=None, q_positions=None,
                     kv_lengths=None, return_lse=False):
  """The whole cache under a block-membership mask (no gather copy): q [B, T, N, H], cache [B, K, S, H]."""
  b, t, n, _ = q.shape
  kv_heads, s = k.shape[1], k.shape[2]
  nb, m = -(-s // block_size), block_indices.shape[2]
  valid = jnp.arange(m)[None, None, :] < block_counts[..., None]
  member = jnp.zeros((b, kv_heads, nb), bool).at[
      jnp.arange(b)[:, None, None], jnp.arange(kv_heads)[None, :, None], block_indices].max(valid)
  pos = jnp.arange(s, dtype=jnp.int32)
  kv_len = jnp.full((b,), s, jnp.int32) if kv_lengths is None else jnp.asarray(kv_lengths, jnp.int32)
  keep = jnp.repeat(member, block_size, axis=2)[..., :s] & (pos < kv_len[:, None, None])
  q_pos = bs.default_q_positions(b, t, kv_len) if q_positions is None else q_positions.astype(jnp.int32)
  qr, pr = bs.pack_rows(q, q_pos, kv_heads, (n // kv_heads) * t)
  out, lse = bs.gathered_reference(qr, pr, k, v, jnp.broadcast_to(pos, (b, kv_heads, s)), keep,
                                   causal=q_positions is not None, scale=scale, softcap=softcap)
  return bs.unpack_result(out, lse, t, n, q.dtype, return_lse)


_CAPS = {"grad": False, "interpretable": True}
BLOCK_SPARSE_IMPLS.register("pallas_triton", _kernel_impl("triton"), platforms=("gpu",), caps=_CAPS,
                            doc="Pallas Triton gather-block kernel, split-K")
BLOCK_SPARSE_IMPLS.register("pallas_tpu", _kernel_impl("tpu"), platforms=("tpu",), caps=_CAPS,
                            doc="Pallas Mosaic TPU gather-block kernel, scalar-prefetched block indices")
BLOCK_SPARSE_IMPLS.register("pallas_mosaic_gpu", _kernel_impl("mosaic_gpu"), platforms=("gpu",),
                            caps=dict(_CAPS, supported=hopper_available),
                            doc="Pallas Mosaic GPU gather-block kernel (Hopper: TMA block gathers, wgmma)")


def _check(q, k, v, block_indices, block_counts, block_size):
  if k.ndim != 4:
    raise ShapeError(f"block_sparse_attention expects a heads-major cache k, v [B, K, S, H]; got k {k.shape}")
  check_qkv(q, jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2))
  b, kv_heads = k.shape[0], k.shape[1]
  if not isinstance(block_size, int) or block_size < 1:
    raise ShapeError(f"block_size must be a positive int, got {block_size!r}")
  if block_indices.ndim != 3 or block_indices.shape[:2] != (b, kv_heads):
    raise ShapeError(f"block_indices must be [B, K, M] = [{b}, {kv_heads}, M], got {block_indices.shape}")
  if tuple(block_counts.shape) != (b, kv_heads):
    raise ShapeError(f"block_counts must be [B, K] = {(b, kv_heads)}, got {tuple(block_counts.shape)}")
  for name, x in (("block_indices", block_indices), ("block_counts", block_counts)):
    if not jnp.issubdtype(x.dtype, jnp.integer):
      raise ShapeError(f"{name} must be integer, got {x.dtype}")


def block_sparse_attention(q: jax.Array, k: jax.Array, v: jax.Array, block_indices: jax.Array,
                           block_counts: jax.Array, *, block_size: int, impl: str = "auto",
                           scale: float | None = None, softcap: float | None = None, return_lse: bool = False,
                           **options) -> jax.Array | tuple[jax.Array, jax.Array]:
  """Attention over per-(batch, kv head) selected key blocks.

  Args:
    q: [B, T, N, H] (T small: decode or a few tokens).  k, v: [B, K, S, H] heads-major cache.
    block_indices: [B, K, M] int32 selected block ids (padded; the first block_counts are used, distinct).
    block_counts: [B, K] int32 how many of the M are valid.  block_size: keys per block (C).
    impl: "auto" or a name from `BLOCK_SPARSE_IMPLS.names()`.  scale: default 1/sqrt(H).  softcap: logit cap.
    return_lse: also return the log-sum-exp.  **options: q_positions [B, T], kv_lengths [B], num_splits, interpret.
  Returns:
    [B, T, N, H] in q's dtype; with return_lse=True (out, lse [B, T, N] fp32): the log-sum-exp of the scaled
    (soft-capped) visible scores, -inf where no key is visible (out is 0 there).
  """
  _check(q, k, v, block_indices, block_counts, block_size)
  rows = q.shape[1] * (q.shape[2] // k.shape[1])
  name = resolve_impl(BLOCK_SPARSE_IMPLS, auto_table(q.dtype, q.shape[-1], rows, block_size), impl, options)
  if not BLOCK_SPARSE_IMPLS.entry(name).caps.get("interpretable"):
    options.pop("interpret", None)  # "auto" may pick a plain-XLA impl for an interpret=True call
  scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
  return BLOCK_SPARSE_IMPLS.get(name)(q, k, v, block_indices, block_counts, block_size=block_size, scale=scale,
                                      softcap=softcap, return_lse=return_lse, **options)
