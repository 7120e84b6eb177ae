"""docs/papers.md has one row per seed paper (all 45, in the seed list's order) and every repository path it names
exists; every RESULTS section it names exists in benchmarks/RESULTS.md."""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The seed titles (the first words of each; ../shared/seeds/papers.txt is outside the repository).
SEEDS = [
    "Inference Scaling for Long-Context Retrieval Augmented Generation", "SpeContext", "Does RAG Really Perform Bad",
    "Analysis and Optimized CXL-Attached Memory", "Test-Time Training Done Right", "MiniMax-M1",
    "Soaring from 4K to 400K", "ReLIC", "LongGenBench", "Is It Really Long Context if All You Need Is Retrieval",
    "Thus Spake Long-Context Large Language Model", "Needle Threading",
    "How to Train Long-Context Language Models (Effectively)", "SCBench",
    "A Comprehensive Survey on Long Context Language Modeling", "LongBench: A Bilingual", "L-Eval",
    "Squeezed Attention", "Effective Long-Context Scaling of Foundation Models",
    "Selecting Influential Samples for Long Context Alignment", "LongIns", "Challenges in Deploying Long-Context",
    "CacheGen", "LooGLE", "Benchmarking and Building Long-Context Retrieval Models with LoCo and M2-BERT",
    "NeedleBench", "Long-context LLMs Struggle with Long In-context Learning", "LongProc", "LongHeads",
    "A Little Goes a Long Way", "LongPO", "L-CiteEval", "LongWriter", "E^2-LLM", "ConnNet", "LOGO",
    "A^2ATS", "Holistic Reasoning with Long-Context LMs", "Augmenting Language Models with Long-Term Memory",
    "TracLLM", "LongSpec", "ByteScale", "PERK", "M4LE", "Untie the Knots",
]
PATH = re.compile(r"`((?:lcjax|pallas_kernels|configs|experiments|tests|benchmarks|docs|colab|scripts)/[^`\s]*)`")


def _rows() -> list[list[str]]:
  with open(os.path.join(REPO, "docs", "papers.md"), encoding="utf-8") as f:
    lines = [line for line in f if re.match(r"^\| \d+ \|", line)]
  return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]


def test_one_row_per_seed_paper_in_order():
  rows = _rows()
  assert len(SEEDS) == 45 and len(rows) == 45
  for i, (row, title) in enumerate(zip(rows, SEEDS), 1):
    assert row[0] == str(i) and row[1].startswith(title), (i, row[1], title)
    assert len(row) == 7 and all(row), row  # modules, experiment, tests, RESULTS, not implemented: each filled


def test_every_named_path_and_results_section_exists():
  with open(os.path.join(REPO, "benchmarks", "RESULTS.md"), encoding="utf-8") as f:
    sections = set(re.findall(r"<!-- (\w+) -->", f.read()))
  missing = []
  for row in _rows():
    for path in PATH.findall(" ".join(row[2:5])):
      if not os.path.exists(os.path.join(REPO, path)):
        missing.append(f"row {row[0]}: {path}")
    for name in re.findall(r"`(\w+)`", row[5]):
      if name not in sections:
        missing.append(f"row {row[0]}: RESULTS section {name}")
  assert not missing, "\n".join(missing)
  assert sum(bool(PATH.findall(row[2])) for row in _rows()) >= 30  # most papers map to modules
