"""The console script: info, generate, demo, and errors reported as messages with exit code 2."""

import subprocess
import sys

import pytest

from lcjax.cli import main


def _lcjax(*args, timeout=600):
  return subprocess.run([sys.executable, "-m", "lcjax.cli", *args], capture_output=True, text=True,
                        timeout=timeout)


def test_info_lists_impls_and_model(capsys):
  assert main(["info"]) == 0
  out = capsys.readouterr().out
  for word in ("xla_blockwise", "reference", "xla_splitk", "vocab_size", "49152", "context limit: 8192"):
    assert word in out


def test_unknown_impl_is_a_clear_error(capsys):
  assert main(["generate", "hi", "--attention-impl", "flashy", "--max-new-tokens", "1"]) == 2
  err = capsys.readouterr().err
  assert "unknown attention impl 'flashy'" in err and "xla_blockwise" in err


@pytest.mark.slow
def test_generate_answers():
  proc = _lcjax("generate", "What is the capital of France? Answer in one word.", "--max-new-tokens", "8")
  assert proc.returncode == 0, proc.stderr
  assert "Paris" in proc.stdout


@pytest.mark.slow
def test_demo_finds_the_fact():
  proc = _lcjax("demo", "--context", "1500")
  assert proc.returncode == 0, proc.stderr
  assert "cinnamon" in proc.stdout.lower() and "tok/s" in proc.stdout and "peak memory" in proc.stdout
  # the printed answer ends at the answer (EOS / first blank line), printed once: no continuation after it
  answer = proc.stdout.split("\nanswer", 1)[1].split("\nprefill", 1)[0]
  assert " ".join(answer.split()).endswith("cinnamon.") and proc.stdout.lower().count("cinnamon") == 1, proc.stdout


def test_prompt_past_context_is_a_clear_error(capsys):
  long_prompt = "word " * 9000
  assert main(["generate", long_prompt, "--max-new-tokens", "4"]) == 2
  assert "exceeds the model's context of 8192 tokens" in capsys.readouterr().err


def test_analyze_reproduces_the_papers_running_example(capsys):
  assert main(["analyze", "--json"]) == 0
  import json
  four, fifty = json.loads(capsys.readouterr().out)
  assert (four["context"], fifty["context"], fifty["concurrency"]) == (4000, 50000, 1)
  assert round(fifty["decode_s"], 1) == 9.8 and round(four["prefill_s"], 2) == 0.89
  assert main(["analyze", "--model", "smollm2-135m", "--hardware", "h100", "--context", "32Ki"]) == 0
  out = capsys.readouterr().out
  assert "context 32,768" in out and "max concurrent users" in out
  assert main(["analyze", "--hardware", "b200"]) == 2
  assert "unknown hardware preset 'b200'" in capsys.readouterr().err
