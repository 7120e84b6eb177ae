"""Mesh configs (MeshConfig fields)."""


def single() -> dict:
  """All devices on the fsdp axis (one device on a laptop)."""
  return {"fsdp": -1}


def fsdp_tp(tensor: int) -> dict:
  """FSDP over the rest, tensor parallel over `tensor` devices."""
  return {"fsdp": -1, "tensor": tensor, "rules": "fsdp_tp"}
