"""Fuzz suite (issue 25), part 2: damaged train checkpoints and byte mutations of the bundled GGUF's header.

Checkpoints: a random file of the newest (or every) step is deleted, truncated or overwritten; `restore_latest`
must restore exactly what one intact step saved, or raise CheckpointError. Bundled header: bytes of the
metadata / tensor-info section of a copy of the bundled SmolLM2 file are mutated; reading, config and tensor
validation must end in ok or CheckpointError, and an ok after a tensor-info mutation must leave every tensor's
(type, shape, bytes) unchanged. `LCJAX_FUZZ_CASES` scales both, as in test_fuzz_inputs.py.
"""

import os
import shutil
import struct

import jax
import numpy as np
import pytest

from lcjax.checkpoint.gguf import check_gguf_tensors, config_from_gguf, read_gguf, tokenizer_data
from lcjax.training.checkpoints import Checkpointer, DamagedCheckpointError
from lcjax.training.config import CheckpointConfig
from tests.fuzz.test_fuzz_inputs import _cases, _run_cases


def _state(step):
  return {"w": np.arange(64, dtype=np.float32).reshape(8, 8) * step, "b": np.full((3,), step, np.int32)}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("ckpt") / "checkpoints")
  ckpt = Checkpointer(directory, CheckpointConfig(max_to_keep=3, async_save=False))
  for step in (1, 2, 3):
    ckpt.save(step, _state(step), {"stage": 0, "iterator": {"pos": step}}, {"model": {}})
  ckpt.close()
  return directory


def _check_data(step, data):
  if not isinstance(data, dict) or data.get("iterator") != {"pos": step}:
    raise DamagedCheckpointError(f"step {step}: iterator state {data!r}")


def test_fuzz_checkpoint_damage(saved, tmp_path):
  rng = np.random.default_rng(33)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _state(1))

  def case(i):
    work = str(tmp_path / f"c{i}")
    shutil.copytree(saved, work)
    steps = [3] if rng.random() < 0.6 else [1, 2, 3]
    for step in steps:
      files = sorted(os.path.join(r, f) for r, _, fs in os.walk(os.path.join(work, str(step))) for f in fs)
      victim = files[int(rng.integers(len(files)))]
      how = int(rng.integers(3))
      if how == 0:
        os.remove(victim)
      elif how == 1:
        with open(victim, "r+b") as f:
          f.truncate(int(rng.integers(0, max(os.path.getsize(victim), 1))))
      else:
        size = os.path.getsize(victim)
        with open(victim, "r+b") as f:
          for _ in range(int(rng.integers(1, 5))):
            f.seek(int(rng.integers(0, max(size, 1))))
            f.write(bytes([int(rng.integers(0, 256))]))
    if rng.random() < 0.2:
      os.makedirs(os.path.join(work, "7"))  # an empty directory named after a later step
    ckpt = Checkpointer(work, CheckpointConfig(async_save=False))
    try:
      step, state, data = ckpt.restore_latest(abstract, _check_data)
    finally:
      ckpt.close()
    assert step in (1, 2, 3), f"case {i}: restored {step}"
    for name, want in _state(step).items():  # what that step saved, bit for bit
      np.testing.assert_array_equal(np.asarray(state[name]), want, err_msg=f"case {i}: step {step} {name}")

  print(_run_cases(_cases(30), case))


@pytest.fixture(scope="module")
def bundled_copy(tmp_path_factory, smollm2_path):
  path = str(tmp_path_factory.mktemp("gguf") / "copy.gguf")
  shutil.copyfile(smollm2_path, path)
  return path


def _fingerprint(g):
  return {n: (t, s, int(np.asarray(raw).__array_interface__["data"][0]) - int(
      np.asarray(g.tensors["token_embd.weight"][2]).__array_interface__["data"][0]), raw.size)
          for n, (t, s, raw) in g.tensors.items()}


def test_fuzz_bundled_header_bytes(bundled_copy):
  """Mutations of the bundled file's header: the scalar metadata (before the vocabulary), the tokenizer arrays'
  type/count words, and the tensor infos."""
  with open(bundled_copy, "rb") as f:
    head = f.read(1_800_000)
  g0 = read_gguf(bundled_copy)
  want = _fingerprint(g0)
  infos = head.index(struct.pack("<Q", len("token_embd.weight")) + b"token_embd.weight")
  tokens_at = head.index(b"tokenizer.ggml.tokens") + len("tokenizer.ggml.tokens")
  regions = [(0, tokens_at + 16), (infos, _data_start(bundled_copy))]
  rng = np.random.default_rng(34)

  def case(i):
    lo, hi = regions[int(rng.integers(len(regions)))]
    pos = int(rng.integers(lo, hi))
    value = bytes([head[pos] ^ (1 << int(rng.integers(0, 8)))]) if rng.random() < 0.5 else \
        bytes([int(rng.integers(0, 256))])
    with open(bundled_copy, "r+b") as f:
      f.seek(pos)
      f.write(value)
    try:
      g = read_gguf(bundled_copy)
      cfg = config_from_gguf(g)
      tokenizer_data(g)
      check_gguf_tensors(g, cfg)
      if pos >= infos:
        assert _fingerprint(g) == want, f"case {i}: tensor info byte {pos} changed silently"
    finally:
      with open(bundled_copy, "r+b") as f:
        f.seek(pos)
        f.write(head[pos:pos + 1])

  print(_run_cases(_cases(25), case, trace_memory=False))


def _data_start(path):
  from lcjax.checkpoint.gguf_reader import open_gguf

  return open_gguf(path)[0].data_start
