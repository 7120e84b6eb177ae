"""`lcjax.ops.quantized_matmul`: x @ W for a weight-only quantised W (`lcjax.quant.QArray`), by named impl.

| impl          | platforms | how                                                                         |
|---------------|-----------|-----------------------------------------------------------------------------|
| reference     | all       | dequantise W to f32, one f32 dot (HIGHEST precision): the oracle            |
| xla           | all       | `XLA_FORMS[form]` (default "auto" = `auto_form`; "dequant": W dequantised in x's dtype, one dot |
|               |           | with f32 accumulation; "int8_dot": int8 x int8 -> int32 with per-row, per-group |
|               |           | dynamic activation scales, 8-bit formats only; "reduce": one fused multiply- |
|               |           | reduce loop reading the integers, for M = 1 decode)                         |
| pallas_triton | gpu       | Triton kernel, one group of rows per step, dequantised in registers         |
| pallas_tpu    | tpu       | Mosaic TPU kernel, K-tiled with a VMEM accumulator                          |
| pallas_mosaic_gpu | gpu sm_90 | Mosaic GPU kernel (TMA, wgmma): per-channel int8, f16/bf16 activations  |

| platform | auto order                  |
|----------|-----------------------------|
| cpu      | xla                         |
| gpu      | pallas_mosaic_gpu (sm_90), pallas_triton, xla |
| tpu      | pallas_tpu, xla             |

"auto" skips a kernel whose tiles the call does not fit (`pallas_kernels.quantized_matmul.tiles`). The Pallas impls
are `interpretable`: on CPU they run only with `interpret=True`; asked for by name without it they raise
`ImplUnavailableError`. The Mosaic GPU kernel takes per-channel int8 only (its group-wise variant does not lower):
group formats on GPU take the Triton kernel.
The measured CPU study of the XLA forms is in `benchmarks/RESULTS.md` ("Quantised matmul on XLA:CPU").
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

import pallas_kernels.quantized_matmul as pqm
from lcjax.errors import ShapeError
from lcjax.ops.attention import resolve_impl
from lcjax.ops.attention_pallas import hopper_available
from lcjax.quant.formats import QArray, dequantize_matrix, integer_values
from lcjax.registry import Registry

QUANTIZED_MATMUL_IMPLS: Registry[Callable] = Registry("quantized-matmul impl")

AUTO_TABLE: dict[str, tuple[str, ...]] = {
    "cpu": ("xla",),
    "gpu": ("pallas_mosaic_gpu", "pallas_triton", "xla"),
    "tpu": ("pallas_tpu", "xla"),
}


def qspec(w: QArray) -> pqm.QSpec:
  """The kernels' static description of a QArray."""
  fmt = w.format
  return pqm.QSpec(fmt.bits, fmt.offset, fmt.has_min, w.group)


@QUANTIZED_MATMUL_IMPLS.register("reference")
def qmm_reference(x, w: QArray):
  """Dequantise W to f32, then one f32 dot: x [M, K] -> [M, N] f32."""
  return jnp.dot(x.astype(jnp.float32), dequantize_matrix(w), precision=jax.lax.Precision.HIGHEST,
                 preferred_element_type=jnp.float32)


def _form_dequant(x, w: QArray):
  k, n = w.matrix_shape
  q = integer_values(w).reshape(k // w.group, w.group, n)
  wd = q * w.scale.astype(jnp.float32)[:, None, :]
  if w.mins is not None:
    wd = wd + w.mins.astype(jnp.float32)[:, None, :]
  return jnp.dot(x, wd.reshape(k, n).astype(x.dtype), preferred_element_type=jnp.float32)


def _form_int8_dot(x, w: QArray):
  if w.format.bits != 8:
    raise ShapeError(f"xla form 'int8_dot' takes 8-bit formats (int8, q8_0), not {w.fmt}")
  k, n = w.matrix_shape
  m, g = x.shape[0], k // w.group
  xg = x.astype(jnp.float32).reshape(m, g, w.group)
  sx = jnp.max(jnp.abs(xg), axis=2) / 127.0  # [M, G] dynamic activation scales
  xq = jnp.round(xg / jnp.where(sx == 0, 1.0, sx)[..., None]).astype(jnp.int8)
  part = jnp.einsum("mgj,gjn->mgn", xq, w.values.reshape(g, w.group, n), preferred_element_type=jnp.int32)
  return jnp.einsum("mgn,mg,gn->mn", part.astype(jnp.float32), sx, w.scale.astype(jnp.float32))


def _form_reduce(x, w: QArray):
  k, n = w.matrix_shape
  wd = (integer_values(w).reshape(k // w.group, w.group, n) * w.scale.astype(jnp.float32)[:, None, :])
  if w.mins is not None:
    wd = wd + w.mins.astype(jnp.float32)[:, None, :]
  return jnp.sum(x.astype(jnp.float32)[:, :, None] * wd.reshape(k, n)[None], axis=1)


XLA_FORMS = {"dequant": _form_dequant, "int8_dot": _form_int8_dot, "reduce": _form_reduce}


def auto_form(x, w: QArray) -> str:
  """The xla form `form="auto"` takes: "reduce" for one row against per-channel 8-bit weights (the only quantised
  decode form that kept up with the fp32 dot on the measured EPYC: RESULTS.md), else "dequant"."""
  return "reduce" if x.shape[0] == 1 and w.format.bits == 8 and w.group == w.matrix_shape[0] else "dequant"


@QUANTIZED_MATMUL_IMPLS.register("xla")
def qmm_xla(x, w: QArray, *, form: str = "auto"):
  """The best XLA form found (see module doc): x [M, K] -> [M, N] f32."""
  form = auto_form(x, w) if form == "auto" else form
  if form not in XLA_FORMS:
    raise ShapeError(f"unknown xla quantized-matmul form {form!r}; accepted: {sorted(XLA_FORMS)}")
  return XLA_FORMS[form](x, w)


def _kernel_impl(target: str):
  def impl(x, w: QArray, *, interpret: bool = False, **blocks):
    """Pallas quantised matmul: x [M, K] -> [M, N] f32."""
    return pqm.quantized_matmul(x, w.values, w.scale, w.mins, spec=qspec(w), target=target, interpret=interpret,
                                **blocks)

  impl.__name__ = f"qmm_pallas_{target}"
  return impl


_CAPS = {"interpretable": True}
QUANTIZED_MATMUL_IMPLS.register("pallas_triton", _kernel_impl("triton"), platforms=("gpu",), caps=_CAPS,
                                doc="Pallas Triton kernel: one group per step, dequantised in registers")
QUANTIZED_MATMUL_IMPLS.register("pallas_tpu", _kernel_impl("tpu"), platforms=("tpu",), caps=_CAPS,
                                doc="Pallas Mosaic TPU kernel: K-tiled, VMEM accumulator")


QUANTIZED_MATMUL_IMPLS.register("pallas_mosaic_gpu", _kernel_impl("mosaic_gpu"), platforms=("gpu",),
                                caps=dict(_CAPS, supported=hopper_available),
                                doc="Pallas Mosaic GPU kernel (Hopper TMA + wgmma), per-channel int8, f16/bf16 x")


def fits(name: str, x, w: QArray) -> bool:
  """Whether the impl's tiles fit this call (jnp impls: always)."""
  if not name.startswith("pallas_"):
    return True
  spec = qspec(w)
  rows = w.values.shape[0]
  group_rows = spec.group // 2 if spec.bits == 4 else spec.group
  return pqm.tiles(name[len("pallas_"):], x.shape[0], rows, w.values.shape[1], group_rows, x.dtype) is not None


@functools.partial(jax.named_call, name="quantized_matmul")
def quantized_matmul(x: jax.Array, w: QArray, *, impl: str = "auto", out_dtype=None, **options) -> jax.Array:
  """x [..., K] @ W [K, N] for a quantised W, accumulated in f32, returned in x's dtype.

  Args:
    x: [..., K] float activations.  w: a `QArray` whose matrix is [K, N].
    impl: "auto" or a name from `QUANTIZED_MATMUL_IMPLS.names()`.  **options: impl options (`interpret=`,
      tile sizes for the kernels, `form=` for xla).
  Returns:
    [..., N] in `out_dtype` (default x's dtype).
  Raises:
    ShapeError: x's last dim is not K, or x is not floating point.  ImplUnavailableError: a named impl that
    cannot run here.
  """
  k, n = w.matrix_shape
  if x.shape[-1] != k or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ShapeError(f"quantized_matmul: x {x.shape} {x.dtype} must be floating with last dim K={k} of the "
                     f"{w.fmt} weight [{k}, {n}]")
  x2 = x.reshape(-1, k)
  table = {p: tuple(nm for nm in names if fits(nm, x2, w)) for p, names in AUTO_TABLE.items()}
  name = resolve_impl(QUANTIZED_MATMUL_IMPLS, table, impl, options)
  y = QUANTIZED_MATMUL_IMPLS.get(name)(x2, w, **options)
  return y.astype(out_dtype or x.dtype).reshape(*x.shape[:-1], n)
