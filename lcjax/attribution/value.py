"""The TracLLM value function v(S) = sum_t log p(Y_t | prompt(Q, S), Y_<t), batched over coalitions.

  v = ValueFunction(pretrained, question="...", answer="4817")
  v([["text a", "text c"], [], ["text b"]])       # -> [3] log-probabilities; [] is the empty context

A coalition is a list of node strings joined with "" into the context (the official `wrap_prompt`); the prompt is
TracLLM's MULTIPLE_PROMPT_FORCE as raw text. Every coalition's (prompt ids + answer ids) row is right-padded to a
length bucket (multiple of `bucket` tokens) and rows are grouped in fixed batches of `batch`, so one jitted
teacher-forced forward per length bucket serves every coalition (no re-jit per coalition). Logits are computed only
at the answer positions ([B, A, V], not [B, T, V]). Results are memoised by context string; `calls` counts
requested evaluations (the paper's cost unit), `forwards` the rows actually run.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import numpy as np

from lcjax.errors import ConfigError

PROMPT = ("You are a helpful assistant, below is a query from a user and some relevant contexts. Answer the question "
          "given the information in those contexts. Your answer should be short and concise and must come from "
          "contexts. \n\nContexts: [context] \n\nQuery: [question] \n\nAnswer:")
NEG_INF_VALUE = -1000.0  # the official code's replacement for log p = -inf


def wrap_prompt(question: str, context: Sequence[str], template: str = PROMPT) -> str:
  """TracLLM's prompt: the template with the texts joined by "" as the context."""
  return template.replace("[question]", question).replace("[context]", "".join(context))


@functools.partial(jax.jit, static_argnums=(0,))
def _score_rows(graphdef, state, tokens, starts, answer, mask):
  """[B, T] rows; answer tokens sit at starts[b] + j: returns [B] sum_j log p(answer_j) over mask."""
  import jax.numpy as jnp
  from flax import nnx

  model = nnx.merge(graphdef, state)
  h, _ = model.hidden(tokens)
  idx = jnp.clip(starts[:, None] - 1 + jnp.arange(answer.shape[0])[None, :], 0, tokens.shape[1] - 1)
  h = jnp.take_along_axis(h, idx[..., None], axis=1)
  logp = jax.nn.log_softmax(model.logits(h).astype(jnp.float32), axis=-1)
  picked = jnp.take_along_axis(logp, jnp.broadcast_to(answer[None, :, None], (*idx.shape, 1)), axis=-1)[..., 0]
  return jnp.sum(jnp.where(mask[None, :], picked, 0.0), axis=1)


class ValueFunction:
  """Batched teacher-forced log p(answer | question, coalition).

  Args:
    pretrained: anything with cfg, graphdef, state and tokenizer (`lcjax.checkpoint.load_pretrained`).
    question: Q.  answer: Y (its token ids, or text tokenised without special tokens).
    batch: rows per jitted call.  bucket: prompt rows are padded to a multiple of this many tokens.
  Raises:
    ConfigError: the answer tokenises to nothing.
  """

  def __init__(self, pretrained, question: str, answer: str | Sequence[int], *, batch: int = 8, bucket: int = 64,
               template: str = PROMPT):
    self.pretrained, self.question, self.template = pretrained, question, template
    tok = pretrained.tokenizer
    self.answer_ids = list(tok.encode(answer)) if isinstance(answer, str) else list(answer)
    if not self.answer_ids:
      raise ConfigError(f"the answer {answer!r} tokenises to nothing; attribution needs at least one answer token")
    self.batch, self.bucket = batch, bucket
    self.answer_pad = 1 << max(3, (len(self.answer_ids) - 1).bit_length())
    self.calls = self.forwards = 0
    self._memo: dict[str, float] = {}

  def prompt_ids(self, context: Sequence[str]) -> list[int]:
    """Token ids of the prompt for a coalition (the answer follows them)."""
    return self.pretrained.tokenizer.encode(wrap_prompt(self.question, context, self.template))

  def _run(self, prompts: list[list[int]]) -> np.ndarray:
    import jax.numpy as jnp

    a = np.zeros((self.answer_pad,), np.int32)
    a[:len(self.answer_ids)] = self.answer_ids
    mask = np.arange(self.answer_pad) < len(self.answer_ids)
    out = []
    order = np.argsort([len(p) for p in prompts], kind="stable")  # similar lengths share a bucket
    for start in range(0, len(prompts), self.batch):
      rows = [prompts[i] for i in order[start:start + self.batch]]
      width = -(-(max(map(len, rows)) + self.answer_pad) // self.bucket) * self.bucket
      tokens = np.zeros((self.batch, width), np.int32)
      starts = np.ones((self.batch,), np.int32)
      for i, p in enumerate(rows):
        tokens[i, :len(p)] = p
        tokens[i, len(p):len(p) + len(self.answer_ids)] = self.answer_ids
        starts[i] = len(p)
      vals = _score_rows(self.pretrained.graphdef, self.pretrained.state, jnp.asarray(tokens), jnp.asarray(starts),
                         jnp.asarray(a), jnp.asarray(mask))
      out.append(np.asarray(vals, np.float64)[:len(rows)])
      self.forwards += len(rows)
    values = np.empty(len(prompts))
    values[order] = np.concatenate(out)
    return values

  def __call__(self, coalitions: Sequence[Sequence[str]]) -> np.ndarray:
    """v of each coalition (a list of node strings; [] is the empty context) -> [C] float64."""
    self.calls += len(coalitions)
    keys = ["".join(c) for c in coalitions]
    todo = sorted({k for k in keys if k not in self._memo})
    if todo:
      for k, v in zip(todo, self._run([self.prompt_ids([k]) for k in todo])):
        self._memo[k] = NEG_INF_VALUE if math.isinf(v) else float(v)
    return np.array([self._memo[k] for k in keys])
