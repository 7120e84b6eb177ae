"""Model architectures (registry `MODELS`) and building/loading helpers."""

from lcjax.models.llama import Llama, forward
from lcjax.registry import Registry

MODELS: Registry[type] = Registry("model architecture")
MODELS.register("llama", Llama)
from lcjax.models.hybrid import Hybrid  # noqa: E402  (MiniMax-style linear-attention hybrids)
MODELS.register("minimax", Hybrid, doc="MiniMax-01/M1: lightning layers + a softmax layer every k-th, postnorm")
MODELS.register("hybrid", Hybrid, doc="a Llama config with k-1 of every k layers lightning (layer_types)")

__all__ = ["Llama", "MODELS", "forward"]
