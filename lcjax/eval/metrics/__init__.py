"""Official metrics of the seed benchmarks, in one registry (`METRICS`).

Each submodule reproduces one benchmark's scoring code (its normalisation, parsing and aggregation quirks are
documented in the module docstring) and registers its metrics under "<benchmark>.<name>".
"""

from lcjax.eval.metrics import (citeeval, leval, longbench, longiclbench, longproc, longproc_travel,  # noqa: F401
                                loogle, m4le, needlebench, needlebench_choice, rag, retrieval, ruler, saliency,
                                scbench, synthetic)
from lcjax.eval.metrics.base import METRICS, Metric, mean_percent, mean_raw

__all__ = ["METRICS", "Metric", "mean_percent", "mean_raw"]
