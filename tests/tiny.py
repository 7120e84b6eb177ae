"""Tiny configs shared by tests (shapes kept small so each compiles in about a second)."""

from lcjax.config import ModelConfig, RopeConfig

TINY = ModelConfig(vocab_size=96, dim=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64,
                   max_seq_len=128, rope=RopeConfig(theta=10000.0), tie_embeddings=False, eos_token_ids=(2,))
TINY_TIED = TINY.replace(tie_embeddings=True)

# SmolLM2-135M's shapes (the bundled model; tests/sharding/test_golden.py checks them against the GGUF file).
SMOLLM2_135M = ModelConfig(vocab_size=49152, dim=576, num_layers=30, num_heads=9, num_kv_heads=3, head_dim=64,
                           mlp_dim=1536, max_seq_len=8192, rope=RopeConfig(theta=100000.0), tie_embeddings=True,
                           eos_token_ids=(2, 0))


def spread_tiny(seed: int = 0):
  """A random TINY model whose head is scaled up 40x: logits spread apart, so greedy references have no near-ties
  (speculative-decoding equality tests)."""
  from lcjax.models.build import init_model

  model = init_model(TINY, seed=seed)
  model.lm_head[...] = model.lm_head[...] * 40.0
  return model
