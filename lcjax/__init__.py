"""lcjax: a JAX research framework for long-context language models."""

from lcjax.ops import CAUSAL, FULL, MaskSpec, attention, decode

__version__ = "0.1.0"
__all__ = ["CAUSAL", "FULL", "MaskSpec", "attention", "decode"]
