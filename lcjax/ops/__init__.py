"""Dispatch APIs for attention and decode, and their reference / XLA implementations."""

from lcjax.ops.attention import ATTENTION_IMPLS, attention
from lcjax.ops.decode import DECODE_IMPLS, decode
from lcjax.ops.mask import CAUSAL, FULL, MaskSpec

__all__ = ["ATTENTION_IMPLS", "CAUSAL", "DECODE_IMPLS", "FULL", "MaskSpec", "attention", "decode"]
