"""Loaders of the official data formats of the seed benchmarks."""
