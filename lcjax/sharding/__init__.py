"""Logical axis names, rule sets, meshes and activation constraints."""
