"""KV caches and KV methods."""

from lcjax.kvcache.dense import DenseLayerKV, KVCache, init_dense_cache

__all__ = ["DenseLayerKV", "KVCache", "init_dense_cache"]
