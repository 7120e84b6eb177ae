"""Launching experiments: `main.py` (absl + ml_collections config_flags) and `xm.py` (XManager sweeps)."""
