"""Every notebook in colab/ runs end to end (nbclient, a fresh kernel, `LCJAX_NOTEBOOK_SMOKE=1`: the same cells at
CI sizes) and its `.ipynb` is the Jupytext pairing of its `.py` percent source."""

import glob
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLAB = os.path.join(REPO, "colab")
SOURCES = sorted(glob.glob(os.path.join(COLAB, "[0-9]*.py")))
CELL_TIMEOUT_S = 600  # a cell stuck past this fails the test (CI runs all of them in ~3 minutes)


def _name(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def test_notebooks_exist_and_are_paired():
  jupytext = pytest.importorskip("jupytext")
  assert [_name(p) for p in SOURCES][:6] == ["01_quickstart", "02_needle_heatmap", "03_kv_methods",
                                             "04_train_long_context", "05_memory_and_serving", "06_parallelism"]
  for src in SOURCES:
    py, nb = jupytext.read(src), jupytext.read(src[:-3] + ".ipynb")
    assert [(c.cell_type, c.source) for c in py.cells] == [(c.cell_type, c.source) for c in nb.cells], \
        f"{_name(src)}.ipynb is out of date: run `jupytext --to ipynb {os.path.relpath(src, REPO)}`"
    assert "pip" in py.cells[1].source and "install" in py.cells[1].source  # the install cell comes first


@pytest.mark.parametrize("source", SOURCES, ids=[_name(p) for p in SOURCES])
def test_notebook_runs(source, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  monkeypatch.setenv("LCJAX_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
  nb = nbformat.read(source[:-3] + ".ipynb", as_version=4)
  nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                          resources={"metadata": {"path": COLAB}}).execute()  # raises CellExecutionError
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
  assert not errors
