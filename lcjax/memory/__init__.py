"""Memory tiers (device, pinned/unpinned host, CXL), paged offload, activation/optimizer offload, and the
analytical memory models and planners that decide what lives where."""

from lcjax.memory.tiers import TIERS, Tier, detect_tiers, memory_kind_of, place, tier

__all__ = ["TIERS", "Tier", "detect_tiers", "memory_kind_of", "place", "tier"]
