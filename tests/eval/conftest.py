"""Fixtures of the evaluation tests: the SmolLM2 tokenizer built from the bundled GGUF (no params loaded), and the
shared data folder."""

import os

import pytest

SHARED = os.environ.get("LCJAX_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..", "..",
                                                          "shared", "data"))
if not os.path.isdir(SHARED):
  SHARED = "/work/shared/data"
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="session")
def tokenizer(smollm2_path):
  """SmolLM2's tokenizer from the GGUF file's own vocabulary."""
  from lcjax.checkpoint.gguf import read_gguf, tokenizer_data
  from lcjax.data.tokenizer import Tokenizer

  g = read_gguf(smollm2_path)
  return Tokenizer.from_tokenizer_data(tokenizer_data(g), [2], smollm2_path)


@pytest.fixture(scope="session")
def shared_data():
  """The shared data folder (skips when it is not mounted)."""
  if not os.path.isdir(SHARED):
    pytest.skip("shared data folder not available")
  return SHARED
