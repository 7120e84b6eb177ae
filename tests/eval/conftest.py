"""Fixtures of the evaluation tests: the SmolLM2 tokenizer built from the bundled GGUF (no params loaded), and the
real benchmark data subsets bundled in the package."""

import os

import pytest

from lcjax.assets import BUNDLED_DATA_DIR

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
  """The real data subsets bundled in lcjax/assets/data (always the bundled ones, so the tests' numbers are fixed;
  $LCJAX_DATA_DIR only redirects configs to the full official data)."""
  return BUNDLED_DATA_DIR
