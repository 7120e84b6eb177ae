"""Model architectures (registry `MODELS`) and building/loading helpers."""

from lcjax.models.llama import Llama, forward
from lcjax.registry import Registry

MODELS: Registry[type] = Registry("model architecture")
MODELS.register("llama", Llama)

__all__ = ["Llama", "MODELS", "forward"]
