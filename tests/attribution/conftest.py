"""The tiny random model with a word-level tokenizer (attribution plumbing without the real model)."""

import zlib

import jax
import pytest
from flax import nnx


class WordTok:
  """A deterministic word-level tokenizer for the tiny model (ids 3..92)."""

  def encode(self, text):
    return [zlib.crc32(w.encode()) % 90 + 3 for w in text.split()]


@pytest.fixture(scope="session")
def tiny():
  from lcjax.models.llama import Llama
  from tests.tiny import TINY

  cfg = TINY.replace(max_seq_len=512)

  class Pre:
    pass

  pre = Pre()
  pre.cfg, pre.tokenizer = cfg, WordTok()
  pre.graphdef, pre.state = nnx.split(Llama(cfg, key=jax.random.PRNGKey(1)))
  return pre
