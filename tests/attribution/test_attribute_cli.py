"""`lcjax attribute` on the tiny model: top-K printed, HTML written, bad method rejected."""

import argparse

import pytest

from lcjax.commands.attribute import _add, run_attribute
from lcjax.errors import ConfigError


def _args(tmp_path, *extra):
  p = argparse.ArgumentParser()
  _add(p)
  ctx = tmp_path / "ctx.txt"
  ctx.write_text("alpha beta gamma.\n\ndelta epsilon.\n\nzeta eta theta iota.")
  return p.parse_args(["--context", str(ctx), "--question", "what is it?", "--answer", "kappa", "--level",
                       "paragraph", "--html", str(tmp_path / "out.html"), *extra])


def test_attribute_cli_writes_html(tiny, tmp_path, capsys):
  top = run_attribute(_args(tmp_path, "-k", "2", "--score-funcs", "stc,loo", "--sh-n", "2"), tiny)
  assert len(top) == 2 and top[0][1] >= top[1][1]
  out = capsys.readouterr().out
  assert "answer: 'kappa'" in out and "1. text" in out
  page = (tmp_path / "out.html").read_text()
  assert page.count("<span title=") == 3 and "what is it?" in page
  top_att = run_attribute(_args(tmp_path, "--method", "attention", "-k", "3"), tiny)
  assert sorted(i for i, _ in top_att) == [0, 1, 2]
  with pytest.raises(ConfigError, match="unknown attribution method 'gradient'"):
    run_attribute(_args(tmp_path, "--method", "gradient"), tiny)
