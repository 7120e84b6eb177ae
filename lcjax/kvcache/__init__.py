"""KV caches and KV methods."""

from lcjax.kvcache.dense import DenseLayerKV, KVCache, init_dense_cache
from lcjax.kvcache.base import KV_METHODS, KVMethod, MethodLayerKV, build_index, init_method_cache, make_method
from lcjax.kvcache import streaming, retrolm, longheads, squeezed, a2ats  # noqa: F401  (register the methods)

__all__ = ["DenseLayerKV", "KVCache", "KV_METHODS", "KVMethod", "MethodLayerKV", "build_index", "init_dense_cache",
           "init_method_cache", "make_method"]
