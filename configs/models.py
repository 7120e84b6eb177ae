"""Model configs (ModelConfig fields)."""


def tiny_decoder(vocab_size: int = 128, dim: int = 128, num_layers: int = 2, heads: int = 4, seq_len: int = 256,
                 theta: float = 10_000.0) -> dict:
  """A tiny Llama decoder for CPU runs (about 0.5M params at the defaults)."""
  return {"vocab_size": vocab_size, "dim": dim, "num_layers": num_layers, "num_heads": heads, "num_kv_heads": heads,
          "head_dim": dim // heads, "mlp_dim": 2 * dim, "max_seq_len": seq_len, "tie_embeddings": False,
          "rope": {"theta": theta}}


def smollm2_135m() -> dict:
  """SmolLM2-135M's shapes (the bundled model)."""
  return {"vocab_size": 49152, "dim": 576, "num_layers": 30, "num_heads": 9, "num_kv_heads": 3, "head_dim": 64,
          "mlp_dim": 1536, "max_seq_len": 8192, "rope": {"theta": 100000.0}, "tie_embeddings": True,
          "eos_token_ids": (2, 0)}


def llama2_7b() -> dict:
  """Llama 2 7B's shapes."""
  return {"vocab_size": 32000, "dim": 4096, "num_layers": 32, "num_heads": 32, "num_kv_heads": 32, "head_dim": 128,
          "mlp_dim": 11008, "max_seq_len": 4096, "rope": {"theta": 10000.0}, "tie_embeddings": False}


def llama3_8b() -> dict:
  """Llama 3 8B's shapes."""
  return {"vocab_size": 128256, "dim": 4096, "num_layers": 32, "num_heads": 32, "num_kv_heads": 8, "head_dim": 128,
          "mlp_dim": 14336, "max_seq_len": 8192, "rope": {"theta": 500000.0}, "tie_embeddings": False}
