"""Synthetic generators of the evaluation tasks (lengths in the model's tokens, needles at any depth)."""
