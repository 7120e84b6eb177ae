"""Quantising a model's param tree, and loading a GGUF file with its quantised tensors kept as they are.

Which parameters are quantised is named by leaf: every matmul weight of the decoder (`wq wk wv wo gate up down
lm_head`) and the embedding table (kept as its transpose [D, V], quantised along D: it is the tied output head, and
a lookup dequantises only the gathered columns). Norm scales and biases stay float. A weight's matrix contracts
its first `CONTRACTED[name]` dims (wo [N, H, D] contracts N and H), matching how the layers call it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.config import ModelConfig
from lcjax.errors import CheckpointError
from lcjax.quant.formats import QUANT_FORMATS, QArray, as_matrix, is_qarray, quantize_matrix
from lcjax.quant.gguf_blocks import GGUF_FORMATS, qarray_from_gguf, take_columns

# leaf name -> number of leading dims the weight contracts; "T": a [V, D] table stored transposed.
CONTRACTED = {"wq": 1, "wk": 1, "wv": 1, "wo": 2, "gate": 1, "up": 1, "down": 1, "lm_head": 1, "table": "T"}
WEIGHTS = ("fp32", "bf16", "gguf") + tuple(QUANT_FORMATS.names())


def _key(k) -> object:
  return getattr(k, "key", getattr(k, "idx", k))


def _leaf_name(path) -> str:
  return str(_key(path[-1]))


def _names_2d(names: tuple, contracted) -> tuple:
  """A parameter's logical names -> the (K, N) names of its quantised matrix."""
  names = tuple(names) + (None,) * 3
  if contracted == "T":
    return names[1], names[0]
  return names[0], names[contracted]


def quantize_param(w, name: str, fmt: str, names: tuple, group: int | None = None) -> QArray:
  """One float parameter (leaf `name`, logical `names`) as a QArray in format `fmt`."""
  contracted = CONTRACTED[name]
  w = jnp.asarray(w, jnp.float32)
  matrix = w.T if contracted == "T" else as_matrix(w, contracted)
  return quantize_matrix(matrix, fmt, group=group, shape=tuple(w.shape), axes=_names_2d(names, contracted),
                         transposed=contracted == "T")


def _param_names(cfg: ModelConfig) -> dict:
  """{path: logical names} of the model's parameters (from their `sharding_names`)."""
  from lcjax.models.build import abstract_model

  specs = nnx.to_pure_dict(nnx.get_partition_spec(abstract_model(cfg)[1]))
  leaves = jax.tree_util.tree_flatten_with_path(specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
  return {tuple(_key(k) for k in p): tuple(s) for p, s in leaves[0]}


def quantize_params(cfg: ModelConfig, params: dict, fmt: str, *, group: int | None = None) -> dict:
  """A nested float param dict with every matmul weight (see CONTRACTED) quantised to `fmt`.

  Raises:
    UnknownNameError: unknown format.  ShapeError: a weight whose K is not a whole number of groups.
  """
  QUANT_FORMATS.get(fmt)
  names = _param_names(cfg)

  def one(path, w):
    name = _leaf_name(path)
    if name not in CONTRACTED or is_qarray(w):
      return w
    return quantize_param(w, name, fmt, names[tuple(_key(k) for k in path)], group)

  return jax.tree_util.tree_map_with_path(one, params, is_leaf=is_qarray)


def _with_param_layout(qa: QArray, w_fp, name: str, names: tuple) -> QArray:
  contracted = CONTRACTED[name]
  return QArray(qa.values, qa.scale, qa.mins, qa.fmt, qa.group, tuple(np.shape(w_fp)), _names_2d(names, contracted),
                contracted == "T")


def gguf_params(g, cfg: ModelConfig, weights: str) -> dict:
  """A GGUF file's params with quantised matmul weights.

  Args:
    g: a parsed `GGUFFile`.  cfg: its config.
    weights: "gguf" keeps every Q8_0/Q4_0/Q4_1 tensor as stored (the file as shipped; other types dequantised);
      a format name (`q8_0`, `q4_1`, ...) keeps tensors already in that format as stored and quantises the rest
      from their dequantised values.
  Returns:
    nested param dict: QArrays for the matmul weights, float arrays elsewhere.
  Raises:
    CheckpointError: an unknown `weights`, or a tensor that cannot be kept/quantised.
  """
  from lcjax.checkpoint import gguf
  from lcjax.checkpoint.hf_layout import _entries

  if weights != "gguf" and weights not in QUANT_FORMATS:
    raise CheckpointError(f"weights {weights!r} is not a quantised format; accepted: gguf, "
                          f"{', '.join(QUANT_FORMATS.names())}")
  params = gguf.params_from_gguf(g, cfg)
  names = _param_names(cfg)
  by_hf = {gguf._hf_name(n): n for n in g.tensors if gguf._hf_name(n)}
  tied_head = cfg.tie_embeddings
  for ours, hf, _ in _entries(cfg):
    name = str(ours[-1])
    if name not in CONTRACTED or (name == "table" and not tied_head and weights != "gguf"):
      continue
    node = params
    for p in ours[:-1]:
      node = node[p]
    gname = by_hf[hf]
    type_name, shape, raw = g.tensors[gname]
    keep = type_name in GGUF_FORMATS and (weights == "gguf" or GGUF_FORMATS[type_name][0] == weights)
    if keep:
      qa = qarray_from_gguf(raw, type_name, shape, where=f"{g.path}: tensor {gname!r}")
      if gname.endswith("attn_q.weight"):
        qa = take_columns(qa, gguf.unpermute_rows(np.arange(qa.shape[1])[:, None], cfg.num_heads)[:, 0])
      elif gname.endswith("attn_k.weight"):
        qa = take_columns(qa, gguf.unpermute_rows(np.arange(qa.shape[1])[:, None], cfg.num_kv_heads)[:, 0])
      node[ours[-1]] = _with_param_layout(qa, node[ours[-1]], name, names[ours])
    elif weights != "gguf":
      node[ours[-1]] = quantize_param(node[ours[-1]], name, weights, names[ours])
  return params


def weight_bytes(state) -> int:
  """Bytes of a model's params as stored (QArray values, scales and mins; float arrays at their dtype)."""
  leaves = jax.tree.leaves(state)
  return int(sum(np.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in leaves))
