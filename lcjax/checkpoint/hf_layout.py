"""The one name/layout mapping between lcjax's Llama params and HF transformers' Llama tensors.

HF stores torch Linear weights as [out, in]; lcjax stores x @ W layouts with heads split:
  model.embed_tokens.weight [V, D]                    <-> embed.table [V, D]
  model.layers.i.self_attn.q_proj.weight [N*H, D]     <-> layers.i.attn.wq [D, N, H]   (k_proj/v_proj: [D, K, H])
  model.layers.i.self_attn.o_proj.weight [D, N*H]     <-> layers.i.attn.wo [N, H, D]
  model.layers.i.mlp.{gate,up}_proj.weight [F, D]     <-> layers.i.mlp.{gate,up} [D, F]
  model.layers.i.mlp.down_proj.weight [D, F]          <-> layers.i.mlp.down [F, D]
  model.layers.i.input_layernorm.weight / post_attention_layernorm.weight / model.norm.weight <-> *.scale
  lm_head.weight [V, D]                               <-> lm_head [D, V] (absent when tied)
GGUF tensors use the same HF layout once llama.cpp's Q/K row permutation is undone (see `lcjax.checkpoint.gguf`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from flax import nnx

from lcjax.config import ModelConfig
from lcjax.errors import CheckpointError

# (our path relative to a layer, HF name relative to a layer, kind). Kinds say how to reshape (see _to_ours).
_LAYER_TENSORS = (
    (("attn_norm", "scale"), "input_layernorm.weight", "vector"),
    (("attn", "wq"), "self_attn.q_proj.weight", "q"),
    (("attn", "wk"), "self_attn.k_proj.weight", "kv"),
    (("attn", "wv"), "self_attn.v_proj.weight", "kv"),
    (("attn", "wo"), "self_attn.o_proj.weight", "o"),
    (("attn", "bq"), "self_attn.q_proj.bias", "q_bias"),
    (("attn", "bk"), "self_attn.k_proj.bias", "kv_bias"),
    (("attn", "bv"), "self_attn.v_proj.bias", "kv_bias"),
    (("mlp_norm", "scale"), "post_attention_layernorm.weight", "vector"),
    (("mlp", "gate"), "mlp.gate_proj.weight", "linear"),
    (("mlp", "up"), "mlp.up_proj.weight", "linear"),
    (("mlp", "down"), "mlp.down_proj.weight", "linear"),
)


def _heads(cfg: ModelConfig, kind: str) -> int:
  return cfg.num_heads if kind.startswith("q") or kind == "o" else cfg.num_kv_heads


def _to_ours(cfg: ModelConfig, kind: str, w: np.ndarray) -> np.ndarray:
  h = cfg.head_dim
  if kind in ("q", "kv"):
    return w.T.reshape(cfg.dim, _heads(cfg, kind), h)
  if kind == "o":
    return w.T.reshape(cfg.num_heads, h, cfg.dim)
  if kind in ("q_bias", "kv_bias"):
    return w.reshape(_heads(cfg, kind), h)
  if kind == "linear":
    return w.T
  return w


def _to_hf(cfg: ModelConfig, kind: str, w: np.ndarray) -> np.ndarray:
  if kind in ("q", "kv"):
    return w.reshape(cfg.dim, -1).T
  if kind == "o":
    return w.reshape(-1, cfg.dim).T
  if kind in ("q_bias", "kv_bias"):
    return w.reshape(-1)
  if kind == "linear":
    return w.T
  return w


def _entries(cfg: ModelConfig):
  """Yields (our path tuple, HF name, kind) for every tensor the config has."""
  yield ("embed", "table"), "model.embed_tokens.weight", "vector"
  for i in range(cfg.num_layers):
    for ours, hf, kind in _LAYER_TENSORS:
      if kind.endswith("bias") and not cfg.attention_bias:
        continue
      yield ("layers", i) + ours, f"model.layers.{i}.{hf}", kind
  yield ("norm", "scale"), "model.norm.weight", "vector"
  if not cfg.tie_embeddings:
    yield ("lm_head",), "lm_head.weight", "linear"


def _set(tree: dict, path: tuple, value) -> None:
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def _get(tree: dict, path: tuple):
  for p in path:
    tree = tree[p]
  return tree


def hf_to_params(cfg: ModelConfig, get_tensor: Callable[[str], np.ndarray], source: str) -> dict:
  """Builds lcjax's nested param dict from HF-named tensors.

  Args:
    cfg: the model config the tensors must match.
    get_tensor: name -> numpy array in HF layout; raises KeyError when absent.
    source: file name for error messages.
  Returns:
    nested dict keyed like `nnx.to_pure_dict(state)` (layer indices as ints).
  Raises:
    CheckpointError: a tensor missing or of the wrong shape.
  """
  from lcjax.models.build import abstract_model  # the model's own shapes are the truth

  want = nnx.to_pure_dict(abstract_model(cfg)[1])
  params: dict = {}
  for ours, hf, kind in _entries(cfg):
    try:
      w = np.asarray(get_tensor(hf))
    except KeyError:
      raise CheckpointError(f"{source}: tensor {hf!r} is missing") from None
    expected = tuple(_get(want, ours).shape)
    if w.size != int(np.prod(expected)) or _to_ours(cfg, kind, w).shape != expected:
      raise CheckpointError(f"{source}: tensor {hf!r} has shape {w.shape}, which does not fit the model "
                            f"(dim={cfg.dim}, heads={cfg.num_heads}/{cfg.num_kv_heads}, head_dim={cfg.head_dim}, "
                            f"mlp_dim={cfg.mlp_dim}, vocab={cfg.vocab_size})")
    _set(params, ours, _to_ours(cfg, kind, w))
  return params


def params_to_hf(cfg: ModelConfig, params: dict) -> dict[str, np.ndarray]:
  """lcjax's nested param dict -> {HF name: numpy array in HF layout}."""
  return {hf: np.ascontiguousarray(_to_hf(cfg, kind, np.asarray(_get(params, ours))))
          for ours, hf, kind in _entries(cfg)}
