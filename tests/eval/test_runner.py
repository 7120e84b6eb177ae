"""End to end on a tiny shape: the bundled SmolLM2-135M on NIAH at 512 tokens, two depths, through the runner
(JSONL per example, resume after an interrupted run, summary, plots) and the CLI."""

import json
import os

import pytest

from lcjax.cli import main
from lcjax.commands.eval import parse_depths
from lcjax.errors import ConfigError, UnknownNameError
from lcjax.eval import TASKS, plots
from lcjax.eval.runner import KV_BACKENDS, EvalConfig, dense_backend, results_path, run

CALLS = {"n": 0, "stop_after": None}


class Interrupted(Exception):
  pass


@KV_BACKENDS.register("test_counting", doc="dense, counting calls; can simulate a kill")
def _counting(pretrained, **options):
  generate = dense_backend(pretrained)

  def wrapped(prompt, max_new_tokens):
    if CALLS["stop_after"] is not None and CALLS["n"] >= CALLS["stop_after"]:
      raise Interrupted
    CALLS["n"] += 1
    return generate(prompt, max_new_tokens)

  return wrapped


@pytest.mark.slow
def test_niah_end_to_end_with_resume(smollm2, tmp_path):
  cfg = EvalConfig(tasks=["niah"], kv=["test_counting"], lengths=[512], depths=[0.0, 100.0], out_dir=str(tmp_path))
  CALLS.update(n=0, stop_after=1)
  with pytest.raises(Interrupted):  # killed after the first example was written
    run(cfg, pretrained=smollm2, progress=False)
  path = results_path(str(tmp_path), "niah", cfg.model, "test_counting")
  with open(path, "a") as f:
    f.write('{"task": "niah", "kv": "test_cou')  # a line cut mid-write by the kill
  CALLS.update(n=0, stop_after=None)
  out = run(cfg, pretrained=smollm2, progress=False)
  assert CALLS["n"] == 1  # only the missing depth was generated
  assert out["problems"] and "removed a partial last line" in out["problems"][0][2]  # repaired once
  assert open(path).read().endswith("}\n")
  records = [json.loads(line) for line in open(path) if line.strip().endswith("}")]
  assert sorted(r["depth"] for r in records) == [0.0, 100.0]
  for r in records:
    assert r["reference"][0] in r["prediction"] and r["score"] == 1.0  # SmolLM2 finds the needle at 512 tokens
    assert abs(r["meta"]["tokens"] - 512) <= 10
  assert [(r["depth"], r["score"]) for r in out["summary"]] == [(0.0, 100.0), (100.0, 100.0)]
  heat = plots.depth_length_heatmap(out["summary"], "niah", "test_counting", str(tmp_path / "heat.png"))
  curve = plots.score_vs_length(out["summary"], "niah", str(tmp_path / "curve.png"))
  assert os.path.getsize(heat) > 1000 and os.path.getsize(curve) > 1000
  CALLS.update(n=0)
  again = run(cfg, pretrained=smollm2, progress=False)
  assert CALLS["n"] == 0 and not again["problems"]  # everything done; the repaired line is not reported again
  assert again["counts"] == {"scored": 2, "failed": 0, "skipped": 0, "reasons": {}}


def test_cli_validation_and_listing(tmp_path, capsys):
  assert main(["eval", "--task", "niah", "--kv", "snapkv_typo", "--out", str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert "unknown KV method 'snapkv_typo'" in err and "dense" in err
  assert main(["eval", "--task", "nope", "--out", str(tmp_path)]) == 2
  assert "unknown eval task 'nope'" in capsys.readouterr().err
  assert main(["eval", "--list"]) == 0
  assert "ruler.niah_multikey_1" in capsys.readouterr().out
  assert main(["eval", "--taxonomy", str(tmp_path / "tax.png")]) == 0
  assert os.path.getsize(tmp_path / "tax.png") > 1000
  assert parse_depths("0:100:25") == [0.0, 25.0, 50.0, 75.0, 100.0] and parse_depths("10,90") == [10.0, 90.0]
  with pytest.raises(ConfigError, match="bad depths"):
    parse_depths("a:b")
  with pytest.raises(UnknownNameError):
    EvalConfig(tasks=["niah"], kv=["nope"]).validate()


def test_every_task_has_taxonomy_tags_and_a_metric():
  from lcjax.eval import METRICS

  for entry in TASKS.entries():
    task = entry.value
    assert 0 <= task.diffusion <= 1 and 0 <= task.scope <= 1
    METRICS.entry(task.metric)
  assert TASKS.get("ruler.cwe").scope > TASKS.get("niah").scope
