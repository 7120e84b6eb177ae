"""Quantised weights: formats (`QArray`, `QUANT_FORMATS`), GGUF blocks kept as stored, quantised param trees."""

from lcjax.quant.formats import QUANT_FORMATS, QArray, dequantize_matrix, is_qarray, quantize_matrix
from lcjax.quant.gguf_blocks import GGUF_FORMATS, qarray_from_gguf
from lcjax.quant.params import WEIGHTS, gguf_params, quantize_params, weight_bytes

__all__ = ["GGUF_FORMATS", "QArray", "QUANT_FORMATS", "WEIGHTS", "dequantize_matrix", "gguf_params", "is_qarray",
           "qarray_from_gguf", "quantize_matrix", "quantize_params", "weight_bytes"]
