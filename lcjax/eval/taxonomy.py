"""The long-context task taxonomy of Goldman et al. (2024), "Is It Really Long Context if All You Need Is
Retrieval? Towards Genuinely Difficult Long Context NLP".

Two axes: **diffusion** - how hard the needed information is to find and extract (a literal needle is easy; facts
that must be recognised by meaning, spread over the document or expressed implicitly are hard); **scope** - how much
information the task needs (one fact vs. most of the context). Retrieval-style tasks sit at low diffusion and low
scope; summarisation, aggregation and holistic reasoning at high scope; the paper's point is that "genuinely long"
tasks need both high. Each registered task carries a (diffusion, scope) pair in [0, 1] placed from its
construction; `taxonomy_table` lists them and `plots.plot_taxonomy` draws the plane.
"""

from __future__ import annotations

# (diffusion, scope) per benchmark family; individual tasks override below.
FAMILY = {
    "ruler": (0.1, 0.1), "needlebench": (0.15, 0.1), "threading": (0.3, 0.2), "longgenbench": (0.2, 0.7),
    "holobench": (0.5, 0.9), "longins": (0.4, 0.8), "longbench": (0.4, 0.3), "longbench_e": (0.4, 0.3),
    "leval": (0.45, 0.35), "loogle": (0.5, 0.4), "m4le": (0.35, 0.35), "longiclbench": (0.55, 0.7),
    "citeeval": (0.45, 0.3), "longproc": (0.6, 0.85), "loco": (0.5, 0.2), "scbench": (0.3, 0.3),
}
TASK = {
    "niah": (0.05, 0.05), "ruler.niah_single_1": (0.02, 0.05), "ruler.niah_multikey_2": (0.15, 0.05),
    "ruler.niah_multikey_3": (0.2, 0.05), "ruler.niah_multivalue": (0.1, 0.15), "ruler.niah_multiquery": (0.1, 0.2),
    "ruler.vt": (0.3, 0.25), "ruler.cwe": (0.2, 0.9), "ruler.fwe": (0.25, 0.85),
    "needlebench.multi_retrieval": (0.15, 0.25), "needlebench.multi_reasoning": (0.35, 0.25),
    "needlebench.atc": (0.6, 0.6), "threading.thread": (0.45, 0.3), "threading.multi_thread": (0.5, 0.4),
    "longbench.gov_report": (0.6, 0.9), "longbench.qmsum": (0.55, 0.6), "longbench.multi_news": (0.6, 0.9),
    "longbench.vcsum": (0.6, 0.9), "longbench.passage_count": (0.4, 0.95), "longbench.passage_retrieval_en": (0.5,
                                                                                                              0.15),
    "longbench.lcc": (0.45, 0.4), "longbench.repobench-p": (0.5, 0.4), "longbench.trec": (0.5, 0.6),
    "longbench.samsum": (0.5, 0.6), "longbench.hotpotqa": (0.5, 0.25), "longbench.musique": (0.55, 0.3),
    "leval.news_summ": (0.6, 0.9), "leval.coursera": (0.5, 0.4), "leval.gsm100": (0.3, 0.6),
    "loogle.shortdep_qa": (0.35, 0.1), "loogle.shortdep_cloze": (0.35, 0.15), "loogle.longdep_qa": (0.6, 0.5),
    "loogle.longdep_summarization": (0.65, 0.9), "citeeval.niah": (0.1, 0.05), "citeeval.counting_stars": (0.2, 0.5),
    "longproc.html_to_tsv": (0.45, 0.8), "longproc.pseudo_to_code": (0.3, 0.9), "longproc.path_traversal": (0.5, 0.5),
    "longproc.tom_tracking": (0.65, 0.85), "longproc.countdown": (0.5, 0.9),
}


def tags_for(name: str, benchmark: str) -> tuple[float, float]:
  """(diffusion, scope) of a task: its own entry, else its benchmark's."""
  return TASK.get(name, FAMILY.get(benchmark, (0.5, 0.5)))


def taxonomy_table(tasks) -> list[dict]:
  """[{"task", "benchmark", "diffusion", "scope"}] for the given Task objects, sorted by name."""
  return [{"task": t.name, "benchmark": t.benchmark, "diffusion": t.diffusion, "scope": t.scope}
          for t in sorted(tasks, key=lambda t: t.name)]
