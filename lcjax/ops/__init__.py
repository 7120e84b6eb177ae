"""Dispatch APIs for attention and decode, and their reference / XLA implementations."""

from lcjax.ops.attention import ATTENTION_IMPLS, attention
from lcjax.ops import attention_context  # noqa: F401  (registers ring, allgather_kv, hdp)
from lcjax.ops.decode import DECODE_IMPLS, decode
from lcjax.ops.mask import CAUSAL, FULL, MaskSpec

__all__ = ["ATTENTION_IMPLS", "CAUSAL", "DECODE_IMPLS", "FULL", "MaskSpec", "attention", "decode"]
from lcjax.ops import attention_pallas  # noqa: E402,F401  (registers pallas_triton, pallas_tpu, pallas_mosaic_gpu)
from lcjax.ops import decode_pallas  # noqa: E402,F401  (registers the pallas decode impls)
from lcjax.ops.block_sparse import BLOCK_SPARSE_IMPLS, block_sparse_attention  # noqa: E402,F401
from lcjax.ops.linear_attention import LINEAR_ATTENTION_IMPLS, linear_attention  # noqa: E402,F401
from lcjax.ops import linear_attention_context  # noqa: E402,F401  (registers lasp)
from lcjax.ops.quantized_matmul import QUANTIZED_MATMUL_IMPLS, quantized_matmul  # noqa: E402,F401
from lcjax.ops.tree_attention import TREE_IMPLS, hybrid_tree_attention  # noqa: E402,F401
