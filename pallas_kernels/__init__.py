"""Pallas kernels (GPU: Mosaic GPU and Triton; TPU: Mosaic TPU), each beside a pure-jnp reference."""
