"""Rollouts with `lcjax.inference.generate.Generator` and the RL loss on the policy's own forward.

  rollout(generator, params, prompts, codec, ...) -> Rollout     G sampled responses per prompt, rewards, fp32
                                                                  sampling log-probs, and the training batch
  sequence_logprobs(model, tokens [B, L], positions [B, L], targets [B, L]) -> [B, L] fp32 log π(target)
  rl_loss(graphdef, loss_name, cfg)(params, batch) -> (loss, metrics)      batch = Rollout.batch (+ "adv" [B])

Batch layout (L = seq_len, static so one compile serves every iteration): row i is prompt + response (the
response includes the stop token when the row stopped), right-padded; `tokens[:, t]` predicts `targets[:, t]`;
`loss_mask` is 1 where the target is a response token; `old_logp` holds the sampler's log-prob there.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lcjax.errors import ContextLengthError
from lcjax.inference.generate import Generator
from lcjax.inference.sampling import SamplingConfig
from lcjax.rl.losses import POLICY_LOSSES, PolicyLossConfig
from lcjax.rl.rewards import score
from lcjax.rl.tasks import PAD, CharCodec


@dataclasses.dataclass
class Rollout:
  """B = P * G rows (the G responses of a prompt contiguous).

  Attributes:
    batch: {"tokens", "targets", "positions", "loss_mask", "old_logp"} numpy arrays [B, L].
    rewards: [B] float32.  responses: B decoded strings.  response_lengths: [B] tokens (stop token included).
  """

  batch: dict
  rewards: np.ndarray
  responses: list[str]
  response_lengths: np.ndarray


def rollout(generator: Generator, params, prompts: Sequence[dict], codec: CharCodec, *, group_size: int,
            max_new_tokens: int, seq_len: int, reward: str, rng: jax.Array,
            sampling: SamplingConfig = SamplingConfig(temperature=1.0)) -> Rollout:
  """Samples `group_size` responses per prompt with the Generator and scores them.

  Args:
    prompts: P dicts with "text" and the reward's fields.  reward: name in REWARDS.  seq_len: L of the batch.
    sampling: the sampling policy (temperature 1 = the model's distribution, what RL trains).
  Raises:
    ContextLengthError: a prompt plus max_new_tokens does not fit seq_len + 1.
  """
  rows = [p for p in prompts for _ in range(group_size)]
  ids = [codec.encode(p["text"]) for p in rows]
  longest = max(len(x) for x in ids)
  if longest + max_new_tokens > seq_len + 1:
    raise ContextLengthError(f"prompt of {longest} tokens + {max_new_tokens} new tokens does not fit the RL batch's "
                             f"seq_len + 1 = {seq_len + 1}")
  out = generator.generate(params, ids, max_new_tokens=max_new_tokens, sampling=sampling, rng=rng,
                           stop_ids=(codec.eos,))
  b = len(rows)
  tokens = np.full((b, seq_len), PAD, np.int32)
  targets = np.full((b, seq_len), PAD, np.int32)
  mask = np.zeros((b, seq_len), np.float32)
  old = np.zeros((b, seq_len), np.float32)
  lengths = np.zeros(b, np.int32)
  for i, (p, resp, stop, lp) in enumerate(zip(ids, out.tokens, out.stop_tokens, out.logprobs)):
    full = p + resp + ([stop] if stop is not None else [])
    n = len(full) - len(p)
    tokens[i, :len(full) - 1] = full[:-1]
    targets[i, :len(full) - 1] = full[1:]
    mask[i, len(p) - 1:len(full) - 1] = 1.0
    old[i, len(p) - 1:len(full) - 1] = lp
    lengths[i] = n
  responses = [codec.decode(r) for r in out.tokens]
  rewards = score(reward, rows, responses)
  positions = np.broadcast_to(np.arange(seq_len, dtype=np.int32), (b, seq_len)).copy()
  batch = {"tokens": tokens, "targets": targets, "positions": positions, "loss_mask": mask, "old_logp": old}
  return Rollout(batch, rewards, responses, lengths)


def sequence_logprobs(model, tokens: jax.Array, positions: jax.Array, targets: jax.Array) -> jax.Array:
  """fp32 log-probs [B, L] of `targets` under the model's next-token distribution (one causal forward)."""
  logits, _ = model(tokens, positions)
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


def rl_loss(graphdef, loss_name: str, cfg: PolicyLossConfig) -> Callable:
  """`loss(params, batch) -> (loss, metrics)` of the registered policy loss on the policy's forward.

  batch: Rollout.batch plus "adv" [B] (group-normalised advantages, zero for rows dropped by dynamic sampling).
  """
  fn = POLICY_LOSSES.get(loss_name)

  def loss(params, batch: dict):
    logp = sequence_logprobs(nnx.merge(graphdef, params), batch["tokens"], batch["positions"], batch["targets"])
    return fn(logp, batch["old_logp"], batch["adv"], batch["loss_mask"], cfg)

  return loss
