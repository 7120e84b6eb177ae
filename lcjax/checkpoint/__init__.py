"""Checkpoint formats: GGUF import, HF safetensors import/export, orbax params, and `load_pretrained`."""

from lcjax.checkpoint.orbax_io import restore_params, save_params
from lcjax.checkpoint.pretrained import Pretrained, load_pretrained, save_pretrained_hf

__all__ = ["Pretrained", "load_pretrained", "restore_params", "save_params", "save_pretrained_hf"]
