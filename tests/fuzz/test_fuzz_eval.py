"""Fuzz suite (issue 25), part 3: the eval runner on damaged official data. Records with fields of the wrong type,
null answers, missing fields, garbage and non-UTF-8 lines: `run` never raises (without --strict), always writes
summary.json, and every result record is either scored or carries its error."""

import json
import os

import numpy as np

from lcjax.errors import ConfigError
from lcjax.eval.runner import KV_BACKENDS, EvalConfig, load_results, results_path, run
from tests.fuzz.test_fuzz_inputs import HOSTILE, _cases, _run_cases

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "eval", "fixtures", "longbench")


class _ByteTokenizer:
  """Bytes as token ids: enough for truncation, prompts and decoding."""

  chat_template = None
  bos_id = None

  def encode(self, text, add_bos=None):
    try:
      return list(text.encode("utf-8"))
    except UnicodeEncodeError:
      raise ConfigError("text to encode is not valid Unicode") from None  # as lcjax's Tokenizer

  def encode_batch(self, texts):
    return [self.encode(t) for t in texts]

  def decode(self, ids, skip_special_tokens=True):
    return bytes(int(i) % 256 for i in ids).decode("utf-8", "replace")


class _Pretrained:
  tokenizer = _ByteTokenizer()


@KV_BACKENDS.register("test_fuzz_echo", doc="returns the prompt's first tokens (fuzz tests)")
def _echo(pretrained, **options):
  return lambda prompt, max_new_tokens: list(prompt[:max_new_tokens])


def test_fuzz_eval_runner_on_damaged_data(tmp_path):
  rng = np.random.default_rng(35)
  base = {name: json.loads(open(os.path.join(FIXTURES, f"{name}.jsonl")).readline()) for name in ("hotpotqa", "trec")}
  hostile = HOSTILE + [["a"], [None], [[1]], {"x": None}]
  totals = {"scored": 0, "failed": 0, "skipped": 0}

  def case(i):
    data = tmp_path / f"d{i}"
    data.mkdir()
    for name, record in base.items():
      lines = []
      for j in range(int(rng.integers(1, 4))):
        r = dict(record, _id=f"{name}{j}")
        for _ in range(int(rng.integers(0, 3))):
          key = sorted(r)[int(rng.integers(len(r)))]
          if rng.random() < 0.2:
            r.pop(key)
          else:
            r[key] = hostile[int(rng.integers(len(hostile)))]
        line = json.dumps(r, default=str).encode("utf-8", "surrogatepass")
        if rng.random() < 0.15:
          line = line[:int(rng.integers(len(line)))] + bytes([int(rng.integers(128, 256))])
        lines.append(line)
      (data / f"{name}.jsonl").write_bytes(b"\n".join(lines))
    out = str(tmp_path / f"o{i}")
    cfg = EvalConfig(tasks=["longbench.hotpotqa", "longbench.trec"], kv=["test_fuzz_echo"], lengths=[256],
                     data_dir=str(data), out_dir=out, num_samples=0)
    result = run(cfg, pretrained=_Pretrained(), progress=False)
    assert os.path.isfile(os.path.join(out, "summary.json"))
    for task in cfg.tasks:
      for r in load_results(results_path(out, task, cfg.model, "test_fuzz_echo")):
        assert r.get("score") is not None or r.get("error"), f"case {i}: {r}"
    assert result["counts"]["skipped"] == len(result["problems"])
    for k in totals:
      totals[k] += result["counts"][k]

  print(_run_cases(_cases(40), case), totals)
  assert min(totals.values()) > 0  # the cases reach every outcome
