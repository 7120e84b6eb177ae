"""`lcjax.ops.tree_attention`: LongSpec's hybrid tree attention for speculative verification (arXiv 2502.17421).

The verify pass feeds the nodes of a draft tree (node 0 = the last verified token) at positions length + depth.
Node i attends to every cached prefix key (no mask) and to the tree nodes on its own path (`tree_mask[b, i, j]`:
j is i or an ancestor of i). The two halves are computed apart and merged by their log-sum-exps:

  (o_p, lse_p) = attention(q, K_cache[:length], V_cache[:length])        existing block-sparse / decode impls
  (o_t, lse_t) = masked_attention(q, K_tree, V_tree, tree_mask)           `TREE_IMPLS` (reference, Pallas kernels)
  w = sigmoid(lse_p - lse_t),   o = w o_p + (1 - w) o_t,   lse = logaddexp(lse_p, lse_t)

which is exactly softmax attention over [prefix | tree] under the mask [1..1 | tree_mask].

| impl (tree part) | platforms | how                                                        |
|------------------|-----------|------------------------------------------------------------|
| reference        | all       | jnp, one masked softmax                                    |
| pallas_triton    | gpu       | `pallas_kernels.tree_attention`, one tile per (b, kv head) |
| pallas_tpu       | tpu       | the same kernel on Mosaic TPU                              |
"""

from __future__ import annotations

import math
import os
from typing import Callable

import jax
import jax.numpy as jnp

import pallas_kernels.tree_attention as ta
from lcjax.errors import ShapeError
from lcjax.ops.attention import check_qkv, current_platform, resolve_impl
from lcjax.ops.block_sparse import block_sparse_attention
from lcjax.registry import Registry

TREE_IMPLS: Registry[Callable] = Registry("tree attention impl")

AUTO_TABLE: dict[str, tuple[str, ...]] = {"cpu": ("reference",), "gpu": ("pallas_triton",), "tpu": ("pallas_tpu",)}


def _kernel(target: str):
  def impl(q, k, v, tree_mask, *, scale, softcap=None, interpret=False):
    return ta.tree_attention(q, k, v, tree_mask, target=target, scale=scale, softcap=softcap, interpret=interpret)

  impl.__name__ = f"tree_pallas_{target}"
  return impl


@TREE_IMPLS.register("reference", caps={"grad": True})
def tree_reference(q, k, v, tree_mask, *, scale, softcap=None):
  """jnp masked attention: q [B, T, N, H], k, v [B, Tk, K, H], tree_mask [B, T, Tk] -> (out, lse [B, T, N])."""
  return ta.tree_reference(q, k, v, tree_mask, scale=scale, softcap=softcap)


TREE_IMPLS.register("pallas_triton", _kernel("triton"), platforms=("gpu",), caps={"interpretable": True},
                    doc="Pallas Triton masked tree attention (one tile per batch row and kv head)")
TREE_IMPLS.register("pallas_tpu", _kernel("tpu"), platforms=("tpu",), caps={"interpretable": True},
                    doc="Pallas Mosaic TPU masked tree attention (one tile per batch row and kv head)")


def tree_part(q, k_tree, v_tree, tree_mask, *, impl: str = "auto", scale: float | None = None,
              softcap: float | None = None, **options):
  """Masked attention of the tree nodes over the tree nodes.

  Args:
    q: [B, T, N, H].  k_tree, v_tree: [B, Tk, K, H] (token-major).  tree_mask: [B, T, Tk] bool.
    impl: "auto" or a name from `TREE_IMPLS.names()`.  **options: interpret (Pallas interpreter).
  Returns:
    (out [B, T, N, H], lse [B, T, N] fp32).
  """
  check_qkv(q, k_tree, v_tree)
  b, t = q.shape[:2]
  if tuple(tree_mask.shape) != (b, t, k_tree.shape[1]):
    raise ShapeError(f"tree_mask must be [B, T, Tk] = {(b, t, k_tree.shape[1])}, got {tuple(tree_mask.shape)}")
  name = resolve_impl(TREE_IMPLS, AUTO_TABLE, impl, options)
  if not TREE_IMPLS.entry(name).caps.get("interpretable"):
    options.pop("interpret", None)
  scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
  return TREE_IMPLS.get(name)(q, k_tree, v_tree, tree_mask.astype(bool), scale=scale, softcap=softcap, **options)


def merge_lse(out_p, lse_p, out_t, lse_t):
  """Softmax results over two disjoint key sets merged: w = sigmoid(lse_p - lse_t), o = w o_p + (1 - w) o_t.

  Args:
    out_p, out_t: [..., H].  lse_p, lse_t: [...] fp32 (-inf for a part that sees no key).
  Returns:
    (out [..., H] in out_p's dtype, lse [...]).
  """
  both_empty = jnp.isneginf(lse_p) & jnp.isneginf(lse_t)
  w = jnp.where(both_empty, 0.0, jax.nn.sigmoid(lse_p - lse_t))[..., None]
  out = w * out_p.astype(jnp.float32) + (1.0 - w) * out_t.astype(jnp.float32)
  return out.astype(out_p.dtype), jnp.logaddexp(lse_p, lse_t)


def dense_prefix(q, k_cache, v_cache, prefix_lengths, *, impl: str = "auto", scale: float | None = None,
                 softcap: float | None = None, **options):
  """Unmasked attention of q [B, T, N, H] over the cached prefix [0, prefix_lengths) of a heads-major cache
  k, v [B, K, S, H], through `ops.block_sparse_attention` with every block selected. Returns (out, lse [B, T, N]).

  On CPU "auto" takes the "xla" impl: with every block selected, the reference's gather would copy the whole cache.
  """
  b, kh, s, _ = k_cache.shape
  if impl == "auto" and current_platform() == "cpu" and os.environ.get("LCJAX_FORCE_REFERENCE") != "1":
    impl = "xla"
  c = next(c for c in (128, 64, 32, 16, 8, 1) if s % c == 0)
  m = s // c
  ids = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32), (b, kh, m))
  counts = jnp.broadcast_to((-(-prefix_lengths // c)).astype(jnp.int32)[:, None], (b, kh))
  return block_sparse_attention(q, k_cache, v_cache, ids, counts, block_size=c, impl=impl, scale=scale,
                                softcap=softcap, kv_lengths=prefix_lengths.astype(jnp.int32), return_lse=True,
                                **options)


def hybrid_tree_attention(q, k_cache, v_cache, prefix_lengths, k_tree, v_tree, tree_mask, *,
                          prefix_impl: str = "auto", tree_impl: str = "auto", scale: float | None = None,
                          softcap: float | None = None, return_lse: bool = False):
  """Attention of draft-tree nodes over [cached prefix | tree], the prefix unmasked, the tree under `tree_mask`.

  Args:
    q: [B, T, N, H] tree-node queries.  k_cache, v_cache: [B, K, S, H] heads-major cache.
    prefix_lengths: [B] int cached positions each row sees.  k_tree, v_tree: [B, Tk, K, H].
    tree_mask: [B, T, Tk] bool.  prefix_impl: a block-sparse impl.  tree_impl: a `TREE_IMPLS` impl.
  Returns:
    out [B, T, N, H] (and lse [B, T, N] with return_lse).
  """
  out_p, lse_p = dense_prefix(q, k_cache, v_cache, prefix_lengths, impl=prefix_impl, scale=scale, softcap=softcap)
  out_t, lse_t = tree_part(q, k_tree, v_tree, tree_mask, impl=tree_impl, scale=scale, softcap=softcap)
  out, lse = merge_lse(out_p, lse_p, out_t, lse_t)
  return (out, lse) if return_lse else out


__all__ = ["TREE_IMPLS", "dense_prefix", "hybrid_tree_attention", "merge_lse", "tree_part"]
