"""Tokenization, data pipelines, packing and synthetic generators."""
