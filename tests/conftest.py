"""Shared fixtures. Eight virtual CPU devices are configured before JAX starts (multi-device tests need them)."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402



@pytest.fixture(scope="session")
def smollm2():
  """The bundled SmolLM2-135M-Instruct, loaded once per test session (fp32)."""
  from lcjax.checkpoint import load_pretrained

  return load_pretrained("smollm2-135m")


@pytest.fixture(scope="session")
def smollm2_path():
  """Path of the bundled GGUF file."""
  from lcjax.models.bundled import bundled_path

  return bundled_path()
