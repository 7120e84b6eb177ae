"""Retrieval accuracy of a trained model on `lcjax.data.synthetic.kv_retrieval` samples at any length.

  acc = mean over samples and queries of [argmax_v p(v | tokens[:answer_position]) == answer]

Dense: one full forward pass (`retrieval_accuracy`). With a KV method (`lcjax.eval.kv_retrieval`): the same
positions scored through the method's decode steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lcjax.config import ModelConfig
from lcjax.data.synthetic import kv_retrieval
from lcjax.models.build import abstract_model
from lcjax.models.llama import forward


def retrieval_samples(length: int, vocab_size: int, num_samples: int, seed: int = 10_000, **kwargs) -> dict:
  """`num_samples` kv_retrieval samples stacked: tokens [B, T], answer_positions, answers [B, Q]."""
  rows = [kv_retrieval(seed * 1_000_003 + i, length, vocab_size, **kwargs) for i in range(num_samples)]
  return {k: np.stack([r[k] for r in rows]) for k in ("tokens", "answer_positions", "answers")}


def retrieval_predictions(cfg: ModelConfig, params, samples: dict, batch_size: int = 8) -> np.ndarray:
  """Argmax predictions [B, Q] of the model `cfg` (its RoPE scaling applies) at every answer position: the logits
  after tokens[:answer_position] of one full forward pass.

  Args:
    cfg: model config (set rope / max_seq_len for the evaluated length).  params: the model's nnx.State.
    samples: from `retrieval_samples` (tokens [B, T], answer_positions [B, Q]).
  """
  graphdef, _ = abstract_model(cfg)

  @jax.jit
  def predict(params, tokens, where):
    logits, _ = forward(graphdef, params, tokens)
    at = jnp.take_along_axis(logits, (where - 1)[..., None], axis=1)
    return jnp.argmax(at, axis=-1)

  preds = []
  for i in range(0, len(samples["tokens"]), batch_size):
    sl = slice(i, i + batch_size)
    preds.append(np.asarray(predict(params, jnp.asarray(samples["tokens"][sl]),
                                    jnp.asarray(samples["answer_positions"][sl]))))
  return np.concatenate(preds)


def retrieval_accuracy(cfg: ModelConfig, params, samples: dict, batch_size: int = 8) -> float:
  """Fraction of answers predicted (argmax) by the model `cfg` (its RoPE scaling applies) with `params`.

  Args:
    cfg: model config (set rope / max_seq_len for the evaluated length).  params: the model's nnx.State.
    samples: from `retrieval_samples` (tokens [B, T]).
  """
  return float(np.mean(retrieval_predictions(cfg, params, samples, batch_size) == samples["answers"]))


def evaluate_retrieval(cfg, params, spec: dict) -> dict:
  """{length: accuracy} on kv_retrieval at spec["lengths"], with the RoPE of spec["rope"] ("train": the trained
  RoPE; "linear": position interpolation by length / trained length) and spec's sample options."""
  from lcjax.recipes.e2llm import inference_rope

  options = dict(spec.get("options", {}))
  out = {}
  for length in spec["lengths"]:
    rope = cfg.model.rope
    if spec.get("rope", "train") == "linear":
      rope = inference_rope(rope, cfg.data.seq_len, length)
    model = cfg.model.replace(rope=rope, max_seq_len=max(length, cfg.model.max_seq_len))
    samples = retrieval_samples(length, cfg.model.vocab_size, spec.get("num_samples", 64), **options)
    out[str(length)] = retrieval_accuracy(model, params, samples)
  return out
