"""KV caches and KV methods."""

from lcjax.kvcache.dense import DenseLayerKV, KVCache, init_dense_cache
from lcjax.kvcache.base import KV_METHODS, KVMethod, MethodLayerKV, build_index, init_method_cache, make_method
from lcjax.kvcache import a2ats, longgen, longheads, retrolm, specontext, squeezed, streaming  # noqa: F401,E501

__all__ = ["DenseLayerKV", "KVCache", "KV_METHODS", "KVMethod", "MethodLayerKV", "build_index", "init_dense_cache",
           "init_method_cache", "make_method"]
