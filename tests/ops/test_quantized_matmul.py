"""`ops.quantized_matmul`: every impl equals the dequantise-then-dot reference (Pallas kernels interpreted on CPU),
the kernels lower for their platforms, and bad calls raise specific errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import ImplUnavailableError, ShapeError, UnknownNameError
from lcjax.ops import QUANTIZED_MATMUL_IMPLS, quantized_matmul
from lcjax.ops.quantized_matmul import qspec
from lcjax.quant import quantize_matrix
from pallas_kernels.quantized_matmul import quantized_matmul as kernel_qmm
from tests.kernels.cases import gpu_device

FORMATS = ["int8", "q8_0", "q4_0", "q4_1"]
K, N = 128, 64


@pytest.fixture(scope="module")
def weights():
  w = jax.random.normal(jax.random.PRNGKey(0), (K, N)) * 0.5
  return {f: quantize_matrix(w, f) for f in FORMATS}


def _x(m, dtype=jnp.float32):
  return jax.random.normal(jax.random.PRNGKey(m), (m, K), dtype)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("m", [1, 40])
def test_xla_and_kernels_match_reference(weights, fmt, m):
  w, x = weights[fmt], _x(m)
  ref = np.asarray(quantized_matmul(x, w, impl="reference"))
  scale = np.abs(ref).max()
  for impl, opts in (("xla", {}), ("xla", {"form": "reduce"}), ("pallas_triton", {"interpret": True}),
                     ("pallas_tpu", {"interpret": True})):
    got = np.asarray(quantized_matmul(x, w, impl=impl, **opts))
    np.testing.assert_allclose(got, ref, atol=2e-5 * scale, rtol=0, err_msg=impl)


@pytest.mark.parametrize("fmt", ["int8", "q8_0"])
def test_int8_dot_form_is_within_its_activation_rounding_bound(weights, fmt):
  """int8 x int8 -> int32 with per-row, per-group activation scales s: |err| <= sum_g (s_g / 2) sum_j |w_gj|."""
  w, x = weights[fmt], _x(4)
  ref = np.asarray(quantized_matmul(x, w, impl="reference"))
  got = np.asarray(quantized_matmul(x, w, impl="xla", form="int8_dot"))
  xg = np.asarray(x).reshape(4, K // w.group, w.group)
  s = np.abs(xg).max(axis=2) / 127.0
  wg = np.abs(np.asarray(w.dequantize())).reshape(K // w.group, w.group, N).sum(axis=1)
  bound = (s / 2) @ wg
  assert np.all(np.abs(got - ref) <= bound * (1 + 1e-5) + 1e-5)
  assert np.abs(got - ref).max() > 0  # it really quantised the activations


def test_bf16_activations_in_kernels(weights):
  w, x = weights["q4_1"], _x(8, jnp.bfloat16)
  ref = np.asarray(quantized_matmul(x.astype(jnp.float32), w, impl="reference"))
  for impl in ("xla", "pallas_triton", "pallas_tpu"):
    got = np.asarray(quantized_matmul(x, w, impl=impl, interpret=True) if impl != "xla" else
                     quantized_matmul(x, w, impl=impl), np.float32)
    np.testing.assert_allclose(got, ref, atol=0.02 * np.abs(ref).max(), err_msg=impl)


def test_xla_auto_form_reduces_decode_rows_of_per_channel_int8(weights):
  from lcjax.ops.quantized_matmul import auto_form

  assert auto_form(_x(1), weights["int8"]) == "reduce"
  assert auto_form(_x(2), weights["int8"]) == "dequant" and auto_form(_x(1), weights["q8_0"]) == "dequant"


def test_leading_dims_auto_and_out_dtype(weights):
  w = weights["q8_0"]
  x = _x(6).reshape(2, 3, K)
  y = quantized_matmul(x, w, out_dtype=jnp.float32)
  assert y.shape == (2, 3, N) and y.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(y).reshape(6, N), np.asarray(quantized_matmul(x.reshape(6, K), w,
                                                                                       impl="reference")), atol=1e-4)


def test_bad_calls_raise(weights):
  w = weights["q4_1"]
  with pytest.raises(ImplUnavailableError, match="pass interpret=True"):
    quantized_matmul(_x(1), w, impl="pallas_tpu")
  with pytest.raises(ShapeError, match="last dim K=128"):
    quantized_matmul(jnp.ones((1, 64)), w)
  with pytest.raises(UnknownNameError, match="pallas_triton"):
    quantized_matmul(_x(1), w, impl="pallas")
  with pytest.raises(ShapeError, match="8-bit formats"):
    quantized_matmul(_x(1), w, impl="xla", form="int8_dot")
  assert {"reference", "xla", "pallas_triton", "pallas_tpu", "pallas_mosaic_gpu"} <= set(
      QUANTIZED_MATMUL_IMPLS.names())


TPU = jax.sharding.AbstractDevice(device_kind="TPU v5 lite", num_cores=1, platform="tpu")


@pytest.mark.parametrize("target", ["triton", "tpu"])
@pytest.mark.parametrize("fmt,m,k,n", [("q8_0", 1, 576, 1536), ("q4_1", 16, 4096, 4096), ("int8", 256, 2048, 512),
                                       ("q4_0", 128, 576, 192)])
def test_kernels_lower_for_their_platform(target, fmt, m, k, n):
  w = jax.eval_shape(lambda a: quantize_matrix(a, fmt), jax.ShapeDtypeStruct((k, n), jnp.float32))
  x = jax.ShapeDtypeStruct((m, k), jnp.bfloat16)
  fn = lambda x, v, s, mn: kernel_qmm(x, v, s, mn, spec=qspec(w), target=target)  # noqa: E731
  platform, call = ("cuda", "__gpu$xla.gpu.triton") if target == "triton" else ("tpu", "tpu_custom_call")
  device = gpu_device() if target == "triton" else jax.sharding.use_abstract_mesh(
      jax.sharding.AbstractMesh((), (), abstract_device=TPU))
  with device:
    text = jax.jit(fn).trace(x, w.values, w.scale, w.mins).lower(lowering_platforms=(platform,)).as_text()
  assert text.count(f"custom_call @{call}") == 1


def test_mosaic_gpu_int8_kernel_interprets_and_lowers(weights):
  """Per-channel int8 (W8A16) on Hopper: the GPU interpreter under an abstract H100 equals the reference, and the
  kernel lowers for cuda; group formats are not offered (auto skips it for them)."""
  from lcjax.ops.quantized_matmul import fits

  w, x = weights["int8"], _x(40, jnp.bfloat16)
  ref = np.asarray(quantized_matmul(x.astype(jnp.float32), w, impl="reference"))
  with gpu_device():
    got = np.asarray(quantized_matmul(x, w, impl="pallas_mosaic_gpu", interpret=True, out_dtype=jnp.float32))
  np.testing.assert_allclose(got, ref, atol=0.02 * np.abs(ref).max())
  assert not fits("pallas_mosaic_gpu", x, weights["q4_1"]) and fits("pallas_mosaic_gpu", x, w)
  big = jax.eval_shape(lambda a: quantize_matrix(a, "int8"), jax.ShapeDtypeStruct((2048, 1536), jnp.float32))
  fn = lambda x, v, s: kernel_qmm(x, v, s, None, spec=qspec(big), target="mosaic_gpu")  # noqa: E731
  text = jax.jit(fn).trace(jax.ShapeDtypeStruct((16, 2048), jnp.bfloat16), big.values, big.scale).lower(
      lowering_platforms=("cuda",)).as_text()
  assert "mosaic_gpu" in text
