"""LongGen (Ge et al. 2024): sparse attention patterns used in training and inference, in a hybrid model whose
remaining 1/3 of layers keep full attention.

The pattern on a sparse layer, over blocks of C positions (query block i, key block j <= i): the attention-sink
block j = 0, the `local` most recent blocks (i - j < local) and every stride-th block ((j + 1) % stride == 0, the
blockwise strided pattern). `ModelConfig.sparse_pattern` / `full_attention_layers` make the model's own masks
(training, prefill: `ops.attention` with `MaskSpec.sparse_blocks`) follow it; this method makes decode read only
those blocks, so a LongGen-trained model decodes with the same pattern it was trained with.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from lcjax.config import ModelConfig
from lcjax.kvcache.base import KV_METHODS, KVMethod, dense_blocks
from lcjax.kvcache.select import merge, range_items


@KV_METHODS.register("longgen")
@dataclasses.dataclass(frozen=True)
class LongGen(KVMethod):
  """Sink block + local blocks + strided blocks on sparse layers; full attention on every `full_every`-th layer.

  Attributes:
    block_size: C.  local_blocks: recent blocks.  stride: strided-block period (0: the smallest that keeps the
    selection within the budget).  full_every: layers i with i % full_every == full_every - 1 attend fully
    (3: the paper's 1/3 hybrid; 0: every layer sparse).
  """

  block_size: int = 64
  local_blocks: int = 2
  stride: int = 0
  full_every: int = 3

  def pattern(self, spec) -> tuple[int, int, int]:
    """(C, local, stride) for this spec's budget and context."""
    if self.stride or spec.full:
      return self.block_size, self.local_blocks, self.stride or 1
    blocks = -(-spec.context // self.block_size)
    room = max(1, spec.budget // self.block_size - 1 - self.local_blocks)
    return self.block_size, self.local_blocks, max(1, math.ceil(blocks / room))

  def full_layers(self, num_layers: int) -> tuple[int, ...]:
    """The hybrid model's full-attention layers."""
    return tuple(i for i in range(num_layers) if self.full_every and i % self.full_every == self.full_every - 1)

  def model_config(self, cfg: ModelConfig, spec) -> ModelConfig:
    """`cfg` with this pattern on its sparse layers (for training and prefill with the pattern)."""
    return cfg.replace(sparse_pattern=self.pattern(spec), full_attention_layers=self.full_layers(cfg.num_layers))

  def select(self, spec, index, q, k, lengths):
    c, local, stride = self.pattern(spec)
    if spec.layer in self.full_layers(spec.num_layers):
      return dense_blocks(lengths, spec.batch, spec.num_kv_heads, spec.max_len, c)
    cur = ((lengths - 1) // c)[:, None]
    one = jnp.ones_like(cur)
    sink = range_items(0 * cur, 1, 0 * cur, one)
    recent = range_items(cur - local + 1, local, one, cur + 1)
    n = -(-spec.max_len // c) // stride + 1
    strided = stride - 1 + stride * jnp.arange(n, dtype=jnp.int32)[None, None, :] + 0 * cur[..., None]
    ok = (strided > 0) & (strided < (cur - local + 1)[..., None])
    return merge([sink, recent, (strided, ok)], c, spec.num_kv_heads)
