"""Prefill, decode, sampling and generation."""

from lcjax.inference.generate import GenerationResult, Generator, check_context, context_limit
from lcjax.inference.sampling import SamplingConfig, sample

__all__ = ["GenerationResult", "Generator", "SamplingConfig", "check_context", "context_limit", "sample"]
