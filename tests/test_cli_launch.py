"""`lcjax --help` lists every command; `lcjax train` takes the launcher's flags and resumes; `lcjax run` runs an
evaluation experiment into the workdir; `lcjax bench` finds the benchmark scripts; stop strings end an answer."""

import json
import os
import types

import pytest

from lcjax.cli import main
from lcjax.commands import COMMANDS
from lcjax.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _last_json(out: str) -> dict:
  return json.loads(out.strip().splitlines()[-1])


def test_help_lists_every_command(capsys):
  with pytest.raises(SystemExit) as e:
    main(["--help"])
  assert e.value.code == 0
  out = capsys.readouterr().out
  for name in COMMANDS.names():
    assert name in out, name
  assert {"train", "run", "bench", "demo", "generate", "eval", "info", "analyze"} <= set(COMMANDS.names())


def test_train_takes_launcher_flags_and_resumes(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(REPO)
  flags = ["--config", "experiments/passkey.py:runlocal,seq_len=96", "--config.train.steps=2",
           "--config.retrieval.num_samples=2", "--workdir", str(tmp_path)]
  assert main(["train", *flags, "--config.train.stop_at=1"]) == 0  # a preempted run: ends after step 1
  first = _last_json(capsys.readouterr().out)
  assert first["step"] == 1 and first["resumed_from"] is None and "retrieval" not in first
  assert main(["train", *flags]) == 0
  second = _last_json(capsys.readouterr().out)
  assert (second["step"], second["resumed_from"]) == (2, 1)  # resumed from the newest checkpoint in the workdir
  assert set(second["retrieval"]) == {"96", "192", "384"}
  assert main(["train", "--config", "experiments/passkey.py:runlocal", "--config.train.stepz=3",
               "--workdir", str(tmp_path)]) == 2
  assert "stepz" in capsys.readouterr().err
  assert main(["train", "--config", "experiments/niah.py:runlocal", "--workdir", str(tmp_path)]) == 2
  assert "use `lcjax run`" in capsys.readouterr().err


def test_run_evaluation_experiment_writes_to_workdir(tmp_path, capsys, monkeypatch, smollm2):
  import lcjax.eval.experiment as experiment

  monkeypatch.chdir(REPO)
  run_config = experiment.run_config  # the session's loaded model instead of a second load (same weights)
  monkeypatch.setattr(experiment, "run_config", lambda config: run_config(config, pretrained=smollm2))
  assert main(["run", "--config", "experiments/niah.py:runlocal,depths=50,lengths=256", "--workdir", str(tmp_path)]) == 0
  out = _last_json(capsys.readouterr().out)
  (row,) = out["summary"]
  assert (row["task"], row["length"]) == ("niah", 256) and os.listdir(tmp_path)
  assert main(["run", "--config", "experiments/niah.py:runlocal"]) == 2
  assert "--workdir DIR are both required" in capsys.readouterr().err


def test_bench_lists_scripts_and_rejects_unknown(capsys, monkeypatch):
  monkeypatch.chdir(REPO)
  assert main(["bench", "--list"]) == 0
  out = capsys.readouterr().out
  for name in ("attention", "generate", "kv_methods", "parallel"):
    assert name in out
  assert main(["bench", "nope"]) == 2
  assert "unknown benchmark 'nope'" in capsys.readouterr().err
  # the script's own flags are forwarded: a tiny real run of benchmarks/attention.py
  assert main(["bench", "attention", "--lengths", "128", "--repeats", "1", "--grad-up-to", "0"]) == 0
  assert "| 128 |" in capsys.readouterr().out


def test_stop_strings(tokenizer_only):
  from lcjax.inference.stopping import NEWLINE_RULE, answer_text, cut_at_stop, stop_token_ids

  tok = tokenizer_only
  ids = stop_token_ids(tok, NEWLINE_RULE)
  assert ids and all("\n\n" in tok.decode([i], skip_special_tokens=False) for i in ids)
  assert tok.encode("a.\n\nb")[1] in ids or tok.encode("\n\n")[0] in ids
  assert cut_at_stop("\nThe answer is 4.\n\nThis is a common way startups die.", NEWLINE_RULE) == "The answer is 4."
  assert cut_at_stop("no stop here ", NEWLINE_RULE) == "no stop here"
  answer = tok.encode(" cinnamon.")
  stop = tok.encode(".\n\n")
  res = types.SimpleNamespace(tokens=[answer], stop_tokens=[stop[-1]])
  assert answer_text(tok, res, 0, NEWLINE_RULE, (2,)) == "cinnamon."
  res = types.SimpleNamespace(tokens=[answer], stop_tokens=[2])  # EOS adds no text
  assert answer_text(tok, res, 0, NEWLINE_RULE, (2,)) == "cinnamon."
  with pytest.raises(ConfigError, match="non-empty"):
    stop_token_ids(tok, [""])


@pytest.fixture(scope="module")
def tokenizer_only(smollm2_path):
  from lcjax.checkpoint.gguf import read_gguf, tokenizer_data
  from lcjax.data.tokenizer import Tokenizer

  return Tokenizer.from_tokenizer_data(tokenizer_data(read_gguf(smollm2_path)), [2], smollm2_path)
