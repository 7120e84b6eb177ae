"""Building models: random init, abstract shapes, and filling a model's state from a param dict."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.config import ModelConfig
from lcjax.errors import CheckpointError
from lcjax.models.llama import Llama
from lcjax.quant.formats import is_qarray


def model_class(cfg: ModelConfig) -> type:
  """The architecture `cfg.architecture` names in `lcjax.models.MODELS`."""
  from lcjax.models import MODELS  # the registry imports every architecture
  return MODELS.get(cfg.architecture)


def init_model(cfg: ModelConfig, seed: int = 0) -> Llama:
  """A randomly initialised model."""
  return model_class(cfg)(cfg, key=jax.random.PRNGKey(seed))


def abstract_model(cfg: ModelConfig):
  """(graphdef, abstract state) without allocating parameters."""
  return nnx.split(nnx.eval_shape(lambda: model_class(cfg)(cfg, key=jax.random.PRNGKey(0))))


def check_params(cfg: ModelConfig, params: dict, source: str, error: type[Exception] = CheckpointError):
  """Raises `error` unless a nested param dict has exactly the model's parameters, each of the model's shape.

  Args:
    cfg: model config.  params: nested dict of arrays (as `nnx.to_pure_dict` gives).  source: named in errors.
  Returns:
    (graphdef, abstract state, {path: wanted abstract leaf}, {path: given array}).
  """
  graphdef, abstract = abstract_model(cfg)
  flat_want = dict(jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(abstract))[0])
  flat_have = dict(jax.tree_util.tree_flatten_with_path(params, is_leaf=is_qarray)[0])  # a QArray is one param
  path_str = lambda p: ".".join(str(getattr(k, "key", k)) for k in p)  # noqa: E731
  missing = [path_str(p) for p in flat_want if p not in flat_have]
  extra = [path_str(p) for p in flat_have if p not in flat_want]
  if missing or extra:
    raise error(f"{source}: parameters do not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
  for p, spec in flat_want.items():
    if tuple(np.shape(flat_have[p])) != tuple(spec.shape):
      raise error(f"{source}: parameter {path_str(p)} has shape {tuple(np.shape(flat_have[p]))}, the model "
                  f"(dim={cfg.dim}, heads={cfg.num_heads}/{cfg.num_kv_heads}, head_dim={cfg.head_dim}) expects "
                  f"{tuple(spec.shape)}")
  return graphdef, abstract, flat_want, flat_have


def state_from_params(cfg: ModelConfig, params: dict, source: str):
  """Fills the model's state from a nested param dict (as `nnx.to_pure_dict` gives), checking every shape.

  Args:
    cfg: model config.  params: nested dict of arrays.  source: file name for errors.
  Returns:
    (graphdef, state) with arrays in `cfg.param_dtype`.
  Raises:
    CheckpointError: a missing, extra or wrongly shaped parameter.
  """
  graphdef, abstract, flat_want, flat_have = check_params(cfg, params, source)
  dtype = jnp.dtype(cfg.param_dtype)
  leaves = {p: jax.tree.map(jnp.asarray, flat_have[p]) if is_qarray(flat_have[p]) else jnp.asarray(flat_have[p], dtype)
            for p in flat_want}
  filled = jax.tree_util.tree_map_with_path(lambda p, _: leaves[p], nnx.to_pure_dict(abstract))
  nnx.replace_by_pure_dict(abstract, filled)
  return graphdef, abstract


def params_of(state) -> dict:
  """The nested param dict of a state (numpy arrays), the inverse of `state_from_params`."""
  return jax.tree.map(np.asarray, nnx.to_pure_dict(state))
