"""Attention-weight attribution (the cheap baseline TracLLM compares against): one teacher-forced forward of
prompt + answer; a text's score is the attention mass the answer tokens put on the text's tokens, averaged over
layers, query heads and answer tokens.

  score_j = 1/(L N A) sum_{l, n, a} sum_{t in span_j} softmax_t(q_{l,n,a} . k_{l,n,t} / sqrt(H))
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import numpy as np

from lcjax.attribution.value import PROMPT, wrap_prompt
from lcjax.errors import ConfigError


def text_spans(tokenizer, question: str, texts: Sequence[str], template: str = PROMPT) -> list[tuple[int, int]]:
  """[start, end) token span of every text inside the prompt (boundaries from prefix encodings; a BPE merge across
  a boundary moves it by a token)."""
  head = template.split("[context]")[0].replace("[question]", question)
  bounds = [len(tokenizer.encode(head + "".join(texts[:i]))) for i in range(len(texts) + 1)]
  return list(zip(bounds[:-1], bounds[1:]))


@functools.partial(jax.jit, static_argnums=(0,))
def _attention_mass(graphdef, state, tokens, rows, row_mask):
  """[T] mean attention probability on each key position from the answer rows (masked), over layers and heads."""
  import jax.numpy as jnp
  from flax import nnx

  from lcjax.layers.rope import rope_cos_sin, rope_frequencies

  model = nnx.merge(graphdef, state)
  cfg = model.cfg
  t = tokens.shape[1]
  positions = jnp.arange(t, dtype=jnp.int32)[None]
  inv_freq, factor = rope_frequencies(cfg.rope, cfg.head_dim, cfg.max_seq_len)
  cos, sin = rope_cos_sin(positions, inv_freq, factor)
  mask = model.mask_for(positions)
  x = model.embed(tokens, jnp.dtype(cfg.dtype))
  group = cfg.num_heads // cfg.num_kv_heads
  visible = jnp.arange(t)[None, :] <= rows[:, None]  # [A, T] causal
  total = jnp.zeros((t,), jnp.float32)
  for i, block in enumerate(model.layers):
    q, k, _ = block.attn.project_qkv(block.attn_norm(x), cos, sin)
    k = jnp.repeat(k[0], group, axis=1)  # [T, N, H]
    logits = jnp.einsum("anh,tnh->nat", q[0, rows].astype(jnp.float32), k.astype(jnp.float32))
    logits = jnp.where(visible[None], logits / np.sqrt(cfg.head_dim), -jnp.inf)
    probs = jax.nn.softmax(logits, axis=-1)  # [N, A, T]
    total += jnp.einsum("nat,a->t", probs, row_mask) / (cfg.num_heads * jnp.sum(row_mask))
    x, _ = block(x, cos, sin, model.layer_mask(mask, i))
  return total / cfg.num_layers


def attention_attribution(pretrained, question: str, texts: Sequence[str], answer: str,
                          template: str = PROMPT, bucket: int = 64) -> np.ndarray:
  """[n] attention mass of the answer on each text (see the module docstring)."""
  import jax.numpy as jnp

  tok = pretrained.tokenizer
  answer_ids = tok.encode(answer)
  if not answer_ids:
    raise ConfigError(f"the answer {answer!r} tokenises to nothing; attribution needs at least one answer token")
  prompt = tok.encode(wrap_prompt(question, texts, template))
  ids = prompt + answer_ids
  width = -(-len(ids) // bucket) * bucket
  tokens = np.zeros((1, width), np.int32)
  tokens[0, :len(ids)] = ids
  a_pad = 1 << max(3, (len(answer_ids) - 1).bit_length())
  rows = np.full((a_pad,), len(prompt) - 1, np.int32)
  rows[:len(answer_ids)] = len(prompt) - 1 + np.arange(len(answer_ids))  # positions predicting each answer token
  mask = (np.arange(a_pad) < len(answer_ids)).astype(np.float32)
  mass = np.asarray(_attention_mass(pretrained.graphdef, pretrained.state, jnp.asarray(tokens), jnp.asarray(rows),
                                    jnp.asarray(mask)))
  return np.array([mass[s:e].sum() for s, e in text_spans(tok, question, texts, template)])
