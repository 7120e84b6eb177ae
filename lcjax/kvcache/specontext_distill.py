"""SpeContext's distilled retrieval model (DLM): the small model learns to predict and to attend like the big one.

  loss = w_kd * T^2 * mean_t KL(softmax(z_big[t] / T) || softmax(z_small[t] / T))          (knowledge distillation)
       + w_attn * sum_{l,n} w[l, n] mean_{b,p} KL(A_big[b, p] || A_small[l, n, b, p]) / sum w  (attention alignment)

  A_big[b, p, s]      = mean over the big model's layers and heads of softmax_s(q_p . k_s / sqrt(H)), s <= p
  A_small[l, n, b, p] = the same distribution from head n of the small model's layer l

A_big is exactly the target `calibrate_heads` ranks by (its top-budget tokens are what SpeContext must fetch), so
the alignment term trains what the retrieval heads are later scored on. Queries: `queries` positions p sampled per
step in [min_context, T) (each sees at least min_context keys). Heads: by default every head of the small model
(w = 1): the retrieval heads are chosen after distillation (`calibrate_heads` on the trained model), so every head
is trained to be a candidate and pruning keeps the best; aligning only the heads an untrained model would pick
freezes that model's accidental choice. The small model's logits are never used by SpeContext, so its heads losing
diversity costs nothing at inference; the KD term is there to keep the hidden states those heads read a language
model's. `heads=((l, n), ...)` aligns only those heads instead.

The big model is frozen: its logits and A_big come from a separate jitted forward and enter the train step as data;
only the small model's params are differentiated (`lcjax.training.state.make_step`, AdamW by default).
Export the result with `lcjax.training.loop.export_model(dir, cfg, state)`; `load_trained(dir)` reads it back.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.config import MeshConfig
from lcjax.errors import ConfigError, ContextLengthError, ShapeError
from lcjax.kvcache.dense import KVCache
from lcjax.kvcache.specontext import ProbeLayerKV, calibrate_heads, init_probe_cache, query_log_probs, topk_recall
from lcjax.models.build import check_params
from lcjax.training.config import OptimizerConfig
from lcjax.training.losses import distill_kl_loss


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SampledProbeKV(ProbeLayerKV):
  """A probe cache that keeps the queries at positions `at` of a full-sequence forward.

  Attributes:
    k, v: [B, K, S, H].  q: [B, P, N, H] the queries at `at` (after RoPE).  at: [P] int positions.
  """

  at: jax.Array

  def observe(self, q, positions) -> "SampledProbeKV":
    return dataclasses.replace(self, q=q[:, self.at])


def sampled_probe_cache(cfg, batch: int, length: int, at) -> KVCache:
  """An empty probe cache of `length` slots keeping the queries at positions `at` [P]."""
  at = jnp.asarray(at, jnp.int32)
  q = jnp.zeros((batch, at.shape[0], cfg.num_heads, cfg.head_dim), jnp.float32)
  base = init_probe_cache(cfg, batch, length)
  return KVCache(tuple(SampledProbeKV(l.k, l.v, q, at) for l in base.layers), base.lengths)


def attention_at(cfg, graphdef, state, tokens, at, with_logits: bool = True):
  """One forward pass over whole sequences with the attention of the queries at positions `at`.

  Args:
    cfg, graphdef, state: a model.  tokens: [B, T] int.  at: [P] int positions < T.
  Returns:
    ([B, T, V] logits or None, [L, B, P, N, T] log attention probabilities over keys s <= at[p]).
  """
  model = nnx.merge(graphdef, state)
  b, t = tokens.shape
  h, cache = model.hidden(tokens, cache=sampled_probe_cache(cfg, b, t, at))
  visible = jnp.broadcast_to(jnp.asarray(at, jnp.int32) + 1, (b, len(at)))
  log_probs = jnp.stack([query_log_probs(l.q, l.k, visible) for l in cache.layers])
  return (model.logits(h) if with_logits else None), log_probs


def mean_attention(log_probs) -> jax.Array:
  """The retrieval target A_big: [L, B, P, N, S] log-probabilities -> [B, P, S] mean over layers and heads."""
  return jnp.exp(log_probs).mean((0, 3))


def attention_alignment_loss(target, log_probs, weights):
  """Weighted mean over heads of KL(target || head).

  Args:
    target: [B, P, S] distributions (A_big).  log_probs: [L, B, P, N, S] the small model's.  weights: [L, N].
  Returns:
    (loss scalar, [L, N] per-head KL averaged over B and P).
  """
  t = jax.lax.stop_gradient(target)[None, :, :, None, :]
  safe = jnp.where(t > 0, t, 1.0)
  kl = jnp.sum(jnp.where(t > 0, t * (jnp.log(safe) - log_probs), 0.0), -1)      # [L, B, P, N]
  per_head = kl.mean((1, 2))
  return jnp.sum(per_head * weights) / jnp.sum(weights), per_head


def head_weights(cfg, heads=None) -> jax.Array:
  """[L, N] alignment weights: all ones (heads None) or one at the given (layer, head) pairs."""
  if heads is None:
    return jnp.ones((cfg.num_layers, cfg.num_heads), jnp.float32)
  bad = [(l, n) for l, n in heads if not (0 <= l < cfg.num_layers and 0 <= n < cfg.num_heads)]
  if bad or not heads:
    raise ConfigError(f"heads {list(heads)}: need (layer, head) pairs within the small model's "
                      f"{cfg.num_layers} layers x {cfg.num_heads} heads, got out of range {bad}")
  w = np.zeros((cfg.num_layers, cfg.num_heads), np.float32)
  for l, n in heads:
    w[l, n] = 1.0
  return jnp.asarray(w)


def distill_loss(small_cfg, small_graphdef, temperature: float, kd_weight: float, attn_weight: float, weights):
  """`loss(params, batch) -> (loss, aux)` of the small model; batch: tokens [B, T], at [P], teacher_logits
  [B, T, V], target [B, P, T] (A_big). aux: loss, kd, attn, tokens."""

  def loss(params, batch):
    logits, log_probs = attention_at(small_cfg, small_graphdef, params, batch["tokens"], batch["at"])
    kd, aux = distill_kl_loss(logits, batch["teacher_logits"], temperature)
    attn, _ = attention_alignment_loss(batch["target"], log_probs, weights)
    total = kd_weight * kd + attn_weight * attn
    return total, {"loss": total, "kd": kd, "attn": attn, "tokens": aux["tokens"]}

  return loss


def teacher_fn(big):
  """The frozen big model's jitted `(state, tokens [B, T], at [P]) -> (logits [B, T, V], A_big [B, P, T])`."""
  cfg, graphdef, _ = big

  @jax.jit
  def teacher(state, tokens, at):
    logits, log_probs = attention_at(cfg, graphdef, state, tokens, at)
    return logits, mean_attention(log_probs)

  return teacher


def query_positions(length: int, queries: int, min_context: int, rng: np.random.Generator) -> np.ndarray:
  """`queries` distinct sorted positions drawn uniformly from [min_context, length)."""
  if not 0 <= min_context < length or queries > length - min_context or queries < 1:
    raise ConfigError(f"cannot draw {queries} query positions from [{min_context}, {length}): need "
                      f"1 <= queries <= length - min_context and 0 <= min_context < length")
  return np.sort(rng.choice(np.arange(min_context, length), queries, replace=False)).astype(np.int32)


def check_pair(big, small, token_batches) -> None:
  """Raises unless big and small (cfg, graphdef, state) share a tokenizer, their params fit their configs, and the
  token batches ([B, T] int, one shape) fit both models' vocabulary and context. The two models may differ in every
  other shape (layers, heads, head_dim): the alignment compares distributions over token positions."""
  (bc, _, bs), (sc, _, ss) = big, small
  for field in ("vocab_size", "bos_token_id", "eos_token_ids"):
    if getattr(bc, field) != getattr(sc, field):
      raise ConfigError(f"the big and small models must share a tokenizer: {field} {getattr(bc, field)} vs "
                        f"{getattr(sc, field)}")
  for cfg, what in ((bc, "big model"), (sc, "small model")):
    if cfg.sliding_window is not None or cfg.sparse_pattern is not None:
      raise ConfigError(f"{what}: attention alignment needs full causal attention, got sliding_window="
                        f"{cfg.sliding_window}, sparse_pattern={cfg.sparse_pattern}")
  check_params(bc, nnx.to_pure_dict(bs), "big model", ShapeError)
  check_params(sc, nnx.to_pure_dict(ss), "small model", ShapeError)
  shapes = {tuple(np.shape(x)) for x in token_batches}
  if len(shapes) != 1 or len(next(iter(shapes))) != 2:
    raise ShapeError(f"token batches must be [B, T] arrays of one shape, got shapes {sorted(shapes)}")
  for x in token_batches:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() >= bc.vocab_size:
      raise ShapeError(f"token batches must hold int ids in [0, {bc.vocab_size}), got dtype {x.dtype}, range "
                       f"[{x.min()}, {x.max()}]")
  length = next(iter(shapes))[1]
  if length > min(bc.max_seq_len, sc.max_seq_len):
    raise ContextLengthError(f"sequences of {length} tokens exceed max_seq_len (big {bc.max_seq_len}, small "
                             f"{sc.max_seq_len})")


def _train_state(params, optimizer, mesh, rules):
  """(TrainState, its shardings) of a copy of `params` (the step donates its state; the caller's stays valid)."""
  from lcjax.sharding.partition import param_shardings, place
  from lcjax.sharding.steps import init_optimizer, replicated
  from lcjax.training.state import TrainState

  p_shard = param_shardings(params, mesh, rules)
  params = place(jax.tree.map(jnp.array, params), p_shard)
  opt_state, opt_shard = init_optimizer(optimizer, params, p_shard, mesh)
  return (TrainState(jax.device_put(np.int32(0), replicated(mesh)), params, opt_state),
          TrainState(replicated(mesh), p_shard, opt_shard))


def distill_retrieval_model(big, small, token_batches, *, steps: int, lr: float = 1e-3, temperature: float = 2.0,
                            kd_weight: float = 1.0, attn_weight: float = 1.0, queries: int = 8,
                            min_context: int | None = None, heads=None, optimizer: OptimizerConfig | None = None,
                            seed: int = 0, time_limit_s: float | None = None, log=None):
  """Distils `small` from the frozen `big` (KD + attention alignment, see the module docstring).

  Args:
    big, small: (cfg, graphdef, state), sharing a tokenizer.  token_batches: sequence of [B, T] int arrays, cycled.
    steps: optimizer steps.  lr: peak learning rate (cosine schedule; `optimizer` overrides everything).
    temperature: KD temperature T.  kd_weight, attn_weight: the two terms' weights.
    queries: query positions sampled per step (P).  min_context: the earliest (default T // 4).
    heads: (layer, head) pairs to align (None: every head).  seed: query sampling.
    time_limit_s: stop after the step that passes this many seconds (the schedule still spans `steps`).
    log: optional callable(step, metrics dict, small params) after every step (params: valid until it returns).
  Returns:
    (trained small state (nnx.State), history: list of {"step", "loss", "kd", "attn", "grad_norm", "lr", "secs"}).
  """
  from lcjax.sharding.mesh import mesh_and_rules
  from lcjax.sharding.steps import replicated
  from lcjax.training.optimizers import make_optimizer
  from lcjax.training.state import make_step

  token_batches = [np.asarray(x) for x in token_batches]
  if not token_batches:
    raise ConfigError("distill_retrieval_model needs at least one token batch")
  check_pair(big, small, token_batches)
  length = token_batches[0].shape[1]
  min_context = length // 4 if min_context is None else min_context
  rng = np.random.default_rng(seed)
  query_positions(length, queries, min_context, rng)  # validates before anything compiles
  opt_cfg = optimizer or OptimizerConfig(lr=lr, warmup_steps=min(10, steps // 10))
  opt, schedule = make_optimizer(opt_cfg, steps)
  mesh, rules = mesh_and_rules(MeshConfig(), jax.devices()[:1])
  state, shardings = _train_state(small[2], opt, mesh, rules)
  loss_fn = distill_loss(small[0], small[1], temperature, kd_weight, attn_weight, head_weights(small[0], heads))
  step_fn = make_step(loss_fn, opt, schedule, mesh, rules, shardings, replicated(mesh))
  teacher = teacher_fn(big)
  history, start = [], time.perf_counter()
  for i in range(steps):
    if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
      break
    t0 = time.perf_counter()
    tokens = jnp.asarray(token_batches[i % len(token_batches)], jnp.int32)
    at = jnp.asarray(query_positions(length, queries, min_context, rng))
    logits, target = teacher(big[2], tokens, at)
    state, metrics = step_fn(state, {"tokens": tokens, "at": at, "teacher_logits": logits, "target": target})
    row = {k: float(v) for k, v in jax.device_get(metrics).items() if k in ("loss", "kd", "attn", "grad_norm", "lr")}
    history.append({"step": i + 1, **row, "secs": time.perf_counter() - t0})
    if log is not None:
      log(i + 1, history[-1], state.params)
  return state.params, history


def evaluation_positions(length: int, queries: int) -> np.ndarray:
  """`queries` evenly spaced positions in the second half of a sequence (each sees >= length / 2 keys)."""
  return np.unique(np.linspace(length // 2, length - 1, queries).astype(np.int32))


@functools.partial(jax.jit, static_argnums=(0, 1, 5))
def _probs_at(cfg, graphdef, state, tokens, at, mean: bool):
  probs = jnp.exp(attention_at(cfg, graphdef, state, tokens, at, with_logits=False)[1])
  return probs.mean((0, 3)) if mean else probs


def attention_probs(model, tokens, at, mean: bool = False) -> np.ndarray:
  """Attention of a (cfg, graphdef, state) model's queries at positions `at` [P] of tokens [B, T] (one forward).

  Returns:
    [L, B, P, N, T] probabilities, or with `mean` the retrieval target A: [B, P, T] mean over layers and heads.
  """
  cfg, graphdef, state = model
  return np.asarray(_probs_at(cfg, graphdef, state, jnp.asarray(tokens, jnp.int32), jnp.asarray(at, jnp.int32),
                              mean))


def calibrate_on_probs(target, small_probs, budget: int, keep: int) -> tuple[tuple[int, int], ...]:
  """Retrieval heads by `calibrate_heads`, every (row, query) a calibration example.

  Args:
    target: [B, P, S] the big model's mean attention (`attention_probs(..., mean=True)`).
    small_probs: [L, B, P, N, S] the small model's.  budget, keep: as `calibrate_heads`.
  """
  l, b, p, n, s = small_probs.shape
  return calibrate_heads(np.reshape(target, (1, b * p, 1, s)), np.reshape(small_probs, (l, b * p, n, s)), budget,
                         keep)


def retrieval_recall(target, small_probs, heads, budget: int) -> float:
  """How well the small model's retrieval heads recall the big model's top-`budget` attended tokens.

  recall = mean over rows and queries p of |top_k(A_big[p]) & top_k(sum_{(l,n) in heads} A_small[l, n, p])| / k,
  k = budget (SpeContext's selection, `retrieval_scores`, sums the heads' probabilities the same way). Evaluate at
  `evaluation_positions` of held-out text.

  Args:
    target: [B, P, S] the big model's mean attention.  small_probs: [L, B, P, N, S].  heads: ((layer, head), ...).
  Returns:
    recall in [0, 1].
  """
  visible = np.sum(np.asarray(target) > 0, -1).min()
  if budget > visible:
    raise ConfigError(f"budget {budget} exceeds the {visible} keys the earliest query sees")
  return topk_recall(target, sum(small_probs[l, :, :, n] for l, n in heads), budget)
