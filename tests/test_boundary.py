"""Issue 25: one error boundary per entry point, and CLI / eval values argparse lets through are refused cleanly."""

import json
import os
import time

import jax.numpy as jnp
import pytest

from lcjax.boundary import run_guarded
from lcjax.cli import main
from lcjax.errors import CheckpointError, ConfigError
from lcjax.eval.runner import EvalConfig, evaluate_one, load_results
from lcjax.eval.task import TASKS
from lcjax.inference.sampling import SamplingConfig, filter_logits


def test_run_guarded(capsys, monkeypatch):
  monkeypatch.delenv("LCJAX_DEBUG", raising=False)
  assert run_guarded("lcjax x", lambda: (_ for _ in ()).throw(CheckpointError("bad file"))) == 2
  assert capsys.readouterr().err == "lcjax x: error: bad file\n"
  assert run_guarded("lcjax x", lambda: {}["k"]) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "unexpected KeyError" in err and "--debug" in err
  with pytest.raises(KeyError):
    run_guarded("lcjax x", lambda: {}["k"], debug=True)


@pytest.mark.parametrize("argv,match", [
    (["--temperature", "nan"], "--temperature must be a finite number"),
    (["--seed", str(2**70)], r"--seed must be in \[0, 2\*\*63\)"),
    (["--rope-factor", "nan", "--rope-scaling", "linear"], "--rope-factor must be a finite number"),
    (["--rope-factor", "4"], "--rope-factor 4.0 needs --rope-scaling"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
])
def test_generate_refuses_bad_values_before_loading(capsys, argv, match):
  t0 = time.monotonic()
  assert main(["generate", "hi", *argv]) == 2
  err = capsys.readouterr().err
  assert err.startswith("lcjax generate: error: ") and err.count("\n") == 1
  assert __import__("re").search(match, err) and time.monotonic() - t0 < 5


def test_non_utf8_prompt(capsys):
  assert main(["generate", "caf\udce9"]) == 2  # how Python passes the byte 0xE9 of a Latin-1 argv
  assert "the prompt is not valid UTF-8" in capsys.readouterr().err


def test_sampling_values():
  with pytest.raises(ConfigError, match="temperature must be finite"):
    SamplingConfig(float("nan"))
  with pytest.raises(ConfigError, match="top_k=1000000 exceeds the vocabulary size 8"):
    filter_logits(jnp.zeros((1, 8)), 1000000, 1.0)


@pytest.mark.parametrize("argv,match", [
    (["--kv-budget", "abc"], "bad --kv-budget 'abc'"),
    (["--max-new-tokens", "0"], "max_new_tokens must be >= 1"),
])
def test_eval_cli_values(tmp_path, capsys, argv, match):
  assert main(["eval", "--out", str(tmp_path), *argv]) == 2
  assert match in capsys.readouterr().err


def test_eval_out_is_a_file(tmp_path):
  (tmp_path / "f").write_text("x")
  with pytest.raises(ConfigError, match="is a file"):
    EvalConfig(tasks=["niah"], out_dir=str(tmp_path / "f")).validate()


def test_results_and_data_damage_is_per_line(tmp_path):
  from lcjax.eval.loaders.common import read_jsonl

  path = tmp_path / "r.jsonl"
  good = {"length": 512, "depth": 50.0, "id": "a", "score": 1.0}
  path.write_bytes(b"\xff\xfe bad\n" + json.dumps(good).encode() + b"\n" + json.dumps({"id": "b"}).encode()
                   + b'\n{"length": [1], "depth": null, "id": "c"}\n')
  problems = []
  assert read_jsonl(str(path), problems)[0] == good and problems[0][1] == 1 and "malformed" in problems[0][2]
  problems = []
  assert load_results(str(path), problems) == [good]
  assert "2 record(s) without length/depth/id" in problems[-1][2]


class _Tok:
  def decode(self, ids):
    return "x"

  def encode(self, text):
    return [1, 2]


def test_one_bad_record_is_recorded_not_raised():
  from lcjax.eval.task import Example

  task = TASKS.get("niah")
  ex = Example(id="1", prompt="p", reference=None)  # "answers": null in the data file
  out = evaluate_one(task, ex, lambda ids, n: [1], _Tok(), 64)
  assert out["score"] is None and out["error_kind"] == "record"
  with pytest.raises(Exception):
    evaluate_one(task, ex, lambda ids, n: [1], _Tok(), 64, strict=True)
  assert os.environ.get("LCJAX_DEBUG", "") in ("", "0")


def test_eval_with_nothing_scored_says_why(capsys):
  from rich.console import Console

  from lcjax.commands.eval import report_outcomes
  from lcjax.errors import DataError

  result = {"problems": [("d.jsonl", 3, "d.jsonl:3: malformed JSON line")],
            "counts": {"scored": 0, "failed": 2, "skipped": 1,
                       "reasons": {"context": "prompt of 9000 tokens exceeds the context 8192"}}}
  with pytest.raises(DataError, match=r"no example could be scored \(2 failed, 1 skipped\); first failure: prompt"):
    report_outcomes(Console(), result, "out")
  assert "records: 0 scored, 2 failed, 1 skipped" in capsys.readouterr().out


def test_launcher_prints_one_line_and_exits_2(tmp_path):
  import subprocess
  import sys

  exp = tmp_path / "bad.py"
  exp.write_text("import ml_collections\n\ndef get_config(arg=None):\n"
                 "  return ml_collections.ConfigDict({'train': {'model': {'no_such_field': 1}}})\n\n"
                 "def sweep(add, arg=None):\n  add()\n")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run([sys.executable, "-m", "lcjax.launch.main", f"--config={exp}", f"--workdir={tmp_path}/w"],
                        capture_output=True, text=True, timeout=120, cwd=repo,
                        env={**os.environ, "PYTHONPATH": repo, "LCJAX_DEBUG": ""})
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("lcjax.launch.main: error: ")
