"""Key-value retrieval accuracy with a KV method, scored exactly like the dense `lcjax.training.retrieval`.

  dense:  argmax of the logits after tokens[:a] (one full forward)            retrieval_predictions
  method: tokens[:a0 - 1] prefilled into the method's cache (dense prefill; LongGen's trained pattern applies in
          prefill too), then tokens a0 - 1 ... a_last - 1 fed one decode step each (teacher forcing), every step
          attending over the method's selection; the prediction for answer a is the argmax after feeding token
          a - 1: the same position as dense, so with budget "all" the predictions are dense's.
a0 is the first answer position of a sample, a_last the last (kv_retrieval: Q queries "Q k v" at the end).
"""

from __future__ import annotations

import numpy as np

from lcjax.errors import ConfigError, ShapeError
from lcjax.kvcache.base import KVMethod
from lcjax.models.build import abstract_model


def answer_span(samples: dict) -> tuple[int, int]:
  """(first, last) answer position, shared by every row of samples["answer_positions"] [B, Q].

  Raises:
    ShapeError: rows with different answer positions (teacher forcing feeds the same positions to the batch).
  """
  where = np.asarray(samples["answer_positions"])
  if where.ndim != 2 or not (where == where[:1]).all():
    raise ShapeError(f"method retrieval scoring needs the same answer positions [B, Q] in every row; got shape "
                     f"{where.shape} with {len({tuple(r) for r in where.reshape(len(where), -1)})} distinct rows")
  if where.min() < 2:
    raise ShapeError(f"answer positions must be >= 2 (a prompt before the first fed token), got {where.min()}")
  return int(where.min()), int(where.max())


def _decoders(cfg, graphdef, method, trained_len, pad_to, retrieval_model):
  """The forced-decode function (prompts, fed [B, M], max_len) -> logits [M, B, V] of `method`, its generators
  built once (their jitted prefill compiles once per shape)."""
  from lcjax.inference.generate import Generator
  from lcjax.inference.kv_method import MethodGenerator, forced_logits
  from lcjax.kvcache.specontext import SpeContext, forced_logits_specontext, init_probe_cache

  gen = MethodGenerator(cfg, graphdef, method, trained_len=trained_len, pad_to=pad_to)
  spe = isinstance(method, SpeContext)
  if spe and retrieval_model is None:
    raise ConfigError("specontext needs retrieval_model=((cfg, graphdef, state), heads): its small model and the "
                      "retrieval heads (see specontext_retrieval_model)")
  if spe:
    (scfg, sgraph, sstate), heads = retrieval_model
    small_gen = Generator(scfg, sgraph, pad_to=pad_to)

  def run(params, prompts, fed, max_len):
    gen.context = len(prompts[0])
    _, cache = gen.prefill(params, prompts, gen.init_cache(len(prompts), max_len))
    if not spe:
      return forced_logits(graphdef, params, cache, fed)
    _, small = small_gen.prefill(sstate, prompts, init_probe_cache(scfg, len(prompts), max_len))
    return forced_logits_specontext(graphdef, sgraph, tuple(heads), params, sstate, fed, cache, small)[0]

  return run


def method_retrieval_predictions(cfg, params, method: KVMethod, samples: dict, *, trained_len: int | None = None,
                                 batch_size: int = 8, pad_to: int = 64, retrieval_model=None) -> np.ndarray:
  """Argmax predictions [B, Q] at every answer position with `method` deciding each decode step's keys.

  Args:
    cfg: model config (RoPE / max_seq_len for the evaluated length).  params: the model's nnx.State.
    method: a KV method (budget relative to the prompt tokens[:a0 - 1]).
    samples: from `retrieval_samples` (tokens [B, T], answer_positions [B, Q], the same positions in every row).
    trained_len: the model's trained window when cfg.max_seq_len was raised for a longer evaluation (LongHeads).
    retrieval_model: SpeContext only: ((cfg, graphdef, state) of the small model, ((layer, head), ...)).
  """
  graphdef, _ = abstract_model(cfg)
  first, last = answer_span(samples)
  prompt_len = first - 1
  max_len = -(-last // pad_to) * pad_to  # fed tokens occupy positions prompt_len .. last - 1
  rows = np.asarray(samples["answer_positions"])[0] - first  # the step that fed token a - 1
  run = _decoders(cfg, graphdef, method, trained_len, pad_to, retrieval_model)
  preds = []
  for i in range(0, len(samples["tokens"]), batch_size):
    tokens = np.asarray(samples["tokens"][i:i + batch_size])
    logits = run(params, [r[:prompt_len].tolist() for r in tokens], tokens[:, prompt_len:last], max_len)
    preds.append(np.argmax(np.asarray(logits)[rows], -1).T)
  return np.concatenate(preds)


def method_retrieval_accuracy(cfg, params, method: KVMethod, samples: dict, **kwargs) -> float:
  """Fraction of answers the model predicts with `method` (see `method_retrieval_predictions` for kwargs)."""
  return float(np.mean(method_retrieval_predictions(cfg, params, method, samples, **kwargs) == samples["answers"]))


def calibration_prompt(length: int, vocab_size: int, seed: int, **options) -> list[int]:
  """A kv_retrieval prompt for SpeContext's head calibration: another sample (its own seed), cut right after its
  first query key (where the big model retrieves), its length the largest multiple of 64 whose sample fits in
  `length` tokens (`calibrate_on` takes multiples of 64). options: as `kv_retrieval` (extra_queries excluded)."""
  from lcjax.data.synthetic import kv_retrieval

  probe = kv_retrieval(seed, length, vocab_size, **options)
  tail = length - int(probe["answer_positions"][0])  # tokens after the cut, fixed by the options
  cut = (length - tail) // 64 * 64
  if cut < 64:
    raise ConfigError(f"a length of {length} leaves no 64-token calibration prompt")
  sample = kv_retrieval(seed, cut + tail, vocab_size, **options)
  return sample["tokens"][:int(sample["answer_positions"][0])].tolist()


def specontext_retrieval_model(cfg, params, calib_prompt, budget: int, layers: int = 1, keep: int = 2):
  """SpeContext's retrieval model for `cfg`: its first `layers` layers, the `keep` heads whose top-`budget`
  tokens best recall the big model's attention on `calib_prompt`. Returns ((cfg, graphdef, state), heads)."""
  from lcjax.kvcache.specontext import calibrate_on, truncated

  graphdef, _ = abstract_model(cfg)
  small = truncated(cfg, params, layers)
  return small, calibrate_on((cfg, graphdef, params), small, calib_prompt, budget, keep)
