"""Quantised formats: round trips within each format's bound, ggml-exact quantisation and GGUF blocks kept as stored
(dequantised bit for bit like gguf's reference), and clear errors for bad input."""

import gguf
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

from lcjax.errors import CheckpointError, ShapeError, UnknownNameError
from lcjax.quant import QUANT_FORMATS, qarray_from_gguf, quantize_matrix
from lcjax.quant.formats import pack_nibbles, unpack_nibbles

GGML = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0,
        "q4_1": gguf.GGMLQuantizationType.Q4_1}


def _matrix(k=128, n=48, seed=0):
  rng = np.random.default_rng(seed)
  w = rng.standard_normal((k, n)).astype(np.float32) * rng.uniform(0.1, 3.0, (1, n)).astype(np.float32)
  w[:32, 0] = 0.0  # an all-zero group: d = 0 must give exact zeros
  return w


def test_nibble_packing_is_ggml_block_order_and_inverts():
  q = np.arange(64 * 3).reshape(64, 3) % 16
  packed = np.asarray(pack_nibbles(jnp.asarray(q)))
  assert packed.shape == (32, 3)
  assert packed[5, 1] == q[5, 1] | (q[21, 1] << 4)  # block 0: rows j and j + 16 share byte j
  assert packed[16 + 5, 2] == q[32 + 5, 2] | (q[48 + 5, 2] << 4)
  np.testing.assert_array_equal(np.asarray(unpack_nibbles(jnp.asarray(packed))), q)


@pytest.mark.parametrize("fmt", ["int8", "q8_0", "q4_0", "q4_1"])
def test_round_trip_error_is_within_half_a_step(fmt):
  w = _matrix()
  qa = quantize_matrix(jnp.asarray(w), fmt)
  back = np.asarray(qa.dequantize())
  assert back.shape == w.shape and qa.group == (128 if fmt == "int8" else 32)
  assert np.all(back[:32, 0] == 0.0)
  d = np.repeat(np.asarray(qa.scale, np.float32), qa.group, axis=0)
  # half a step, plus what rounding d (and m) to f16 after choosing q moves a value: <= 15 steps * 2^-11 + |m|2^-11
  slack = 0.0 if fmt == "int8" else (16 * np.abs(d) + np.abs(w).max()) * 2.0 ** -11
  # q4_0's 16 levels are -8..7 steps: a value opposite in sign to the group's extreme may clamp at 7 (< 1 step off)
  steps = 1.0 if fmt == "q4_0" else 0.5
  assert np.all(np.abs(back - w) <= steps * np.abs(d) * (1 + 1e-6) + slack + 1e-7)
  bits = {"int8": 8, "q8_0": 8, "q4_0": 4, "q4_1": 4}[fmt]
  assert QUANT_FORMATS.get(fmt).bits == bits
  assert qa.nbytes == w.size * bits // 8 + qa.scale.nbytes + (0 if qa.mins is None else qa.mins.nbytes)


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0", "q4_1"])
def test_quantize_matches_ggml_reference_bit_for_bit(fmt):
  """lcjax's quantiser gives gguf's (ggml-exact) blocks; GGUF stores W as [N, K], lcjax as [K, N]."""
  w = _matrix(seed=1)
  blocks = gguf_quantize(np.ascontiguousarray(w.T), GGML[fmt])
  ours = quantize_matrix(jnp.asarray(w), fmt)
  theirs = qarray_from_gguf(blocks, fmt.upper(), w.T.shape)
  for a, b in ((ours.values, theirs.values), (ours.scale, theirs.scale), (ours.mins, theirs.mins)):
    if b is not None:
      np.testing.assert_array_equal(np.asarray(a), b)


@pytest.fixture(scope="module")
def bundled_gguf(smollm2_path):
  from lcjax.checkpoint.gguf import read_gguf

  return read_gguf(smollm2_path)


@pytest.mark.parametrize("type_name", ["Q8_0", "Q4_1"])
def test_bundled_gguf_blocks_dequantise_bit_for_bit(bundled_gguf, type_name):
  """Tensors of the shipped file, kept quantised, dequantise to exactly gguf's reference values (on device)."""
  g = bundled_gguf
  name = next(n for n, t in g.tensors.items() if t[0] == type_name)
  _, shape, raw = g.tensors[name]
  raw = np.asarray(raw).reshape(shape[0], -1)[:384]  # rows of blocks; 384 output rows keep it quick
  shape = (raw.shape[0], shape[1])
  qa = qarray_from_gguf(raw, type_name, shape)
  ours = np.asarray(jax.jit(lambda q: q.dequantize())(jax.tree.map(jnp.asarray, qa)))
  ref = gguf_dequantize(raw, getattr(gguf.GGMLQuantizationType, type_name))
  np.testing.assert_array_equal(ours.view(np.uint32), ref.T.astype(np.float32).view(np.uint32))


def test_bad_inputs_raise_specific_errors():
  w = jnp.ones((40, 8))
  with pytest.raises(ShapeError, match="K=40 .* groups of 32"):
    quantize_matrix(w, "q8_0")
  with pytest.raises(ShapeError, match="multiple of 32"):
    quantize_matrix(jnp.ones((48, 8)), "q4_1", group=16)
  with pytest.raises(ShapeError, match=r"\[K, N\] matrix"):
    quantize_matrix(jnp.ones((4, 4, 4)), "int8")
  with pytest.raises(UnknownNameError, match="q4_1"):
    quantize_matrix(w, "q3")
  with pytest.raises(CheckpointError, match="Q5_K cannot be kept quantised; accepted: Q8_0, Q4_0, Q4_1"):
    qarray_from_gguf(np.zeros(176, np.uint8), "Q5_K", (1, 256))
  with pytest.raises(CheckpointError, match="needs 40 bytes"):
    qarray_from_gguf(np.zeros(39, np.uint8), "Q4_1", (2, 32))
