"""Fuzz suite (issue 25): mutated model files, configs, tokenizer fields, chat templates and eval data must end in
`ok` or an `lcjax.errors` exception, within a time bound, and never load mutated tensor metadata silently.

Fixed seeds; `LCJAX_FUZZ_CASES` scales every target (default: the CI counts below, ~200 per target). Each case is
timed (5 CPU seconds: wall time would fail on a contended machine) and its peak allocation traced (tracemalloc,
numpy included; 2 GiB bound); the process's peak RSS growth per target is bounded too. The code under test is
bounded by construction (every length checked against the bytes left, limits on every count), so no case needs a
subprocess.
"""

import hashlib
import json
import os
import resource
import struct
import time
import tracemalloc

import jax
import numpy as np
import pytest
from flax import nnx

from lcjax.checkpoint.gguf import GGUFFile, config_from_gguf, params_from_gguf, read_gguf, tokenizer_data
from lcjax.checkpoint.safetensors_io import config_from_hf, config_to_hf, load_hf, save_hf
from lcjax.data.chat_template import TemplateLimits, render_chat_template
from lcjax.data.tokenizer import Tokenizer
from lcjax.errors import LcjaxError
from lcjax.eval.loaders.common import read_jsonl
from lcjax.eval.runner import load_results
from lcjax.models.build import init_model, params_of
from tests.tiny import TINY

SCALE = float(os.environ.get("LCJAX_FUZZ_CASES", "0") or 0) / 200 or 1.0
CASE_SECONDS = 5.0
CASE_BYTES = 2 << 30
RSS_GROWTH = 2 << 30


def _cases(ci: int) -> int:
  return max(1, int(ci * SCALE))


def _checksum(params) -> str:
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    h.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
  return h.hexdigest()


def _rss() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_cases(n, case, trace_memory: bool = True):
  """Runs case(i) for i < n; each must return normally or raise LcjaxError, within CASE_SECONDS and with at most
  CASE_BYTES allocated at its peak (numpy and Python allocations, traced by tracemalloc; `trace_memory=False` for
  targets whose ~10^5 small allocations per case it would slow 5x - their peak RSS growth is still bounded)."""
  outcomes = {"ok": 0, "error": 0}
  start_rss = _rss()
  tracing = tracemalloc.is_tracing()
  if not tracing and trace_memory:
    tracemalloc.start()
  try:
    for i in range(n):
      if trace_memory:
        tracemalloc.reset_peak()
      base = tracemalloc.get_traced_memory()[0]
      t0 = time.process_time()  # CPU seconds: a hang burns them, a contended machine does not
      try:
        case(i)
        outcomes["ok"] += 1
      except LcjaxError:
        outcomes["error"] += 1
      except Exception as e:  # noqa: BLE001 - the point of the suite
        pytest.fail(f"case {i}: non-lcjax exception {type(e).__name__}: {str(e)[:300]}")
      took = time.process_time() - t0
      assert took < CASE_SECONDS, f"case {i} took {took:.1f} CPU seconds"
      peak = tracemalloc.get_traced_memory()[1] - base if trace_memory else 0
      assert peak < CASE_BYTES, f"case {i} allocated {peak / 2**20:.0f} MiB"
  finally:
    if not tracing and trace_memory:
      tracemalloc.stop()
  assert _rss() - start_rss < RSS_GROWTH
  return outcomes


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A tiny Q8_0 GGUF (written as llama.cpp would), its header size and its params' checksum."""
  from tests.checkpoint.test_gguf import _write_tiny_gguf

  params = params_of(nnx.state(init_model(TINY, seed=1)))
  path = str(tmp_path_factory.mktemp("fuzz") / "tiny.gguf")
  _write_tiny_gguf(path, TINY, params, "Q8_0")
  g = read_gguf(path)
  with open(path, "rb") as f:
    data = f.read()
  infos_start = data.index(b"token_embd.weight") - 8  # tensor infos start with the first tensor's name length
  return {"path": path, "bytes": data, "infos_start": infos_start,
          "checksum": _checksum(params_from_gguf(g, config_from_gguf(g)))}


def _load(path):
  g = read_gguf(path)
  return params_from_gguf(g, config_from_gguf(g))


def test_fuzz_gguf_header_bytes(tiny, tmp_path):
  """Byte flips / overwrites in the header (metadata and tensor infos). A load that succeeds after a mutation in
  the tensor infos must give the original weights (else it loaded mutated tensor metadata silently)."""
  rng = np.random.default_rng(25)
  data, path = tiny["bytes"], str(tmp_path / "m.gguf")
  stop = _header_end(data)

  def case(i):
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 3))):
      pos = int(rng.integers(0, stop))
      buf[pos] = int(rng.integers(0, 256)) if rng.random() < 0.4 else buf[pos] ^ (1 << int(rng.integers(0, 8)))
    with open(path, "wb") as f:
      f.write(buf)
    params = _load(path)
    changed = [j for j in range(stop) if buf[j] != data[j]]
    if changed and min(changed) >= tiny["infos_start"]:
      assert _checksum(params) == tiny["checksum"], f"case {i}: mutated tensor info at {changed} loaded silently"

  print(_run_cases(_cases(150), case))


def _header_end(data: bytes) -> int:
  """Where the data section starts (the tiny file's header, parsed by lcjax's reader)."""
  from lcjax.checkpoint.gguf_reader import parse_header

  return parse_header("tiny", data).data_start


def test_fuzz_gguf_truncations(tiny, tmp_path):
  rng = np.random.default_rng(26)
  data, path = tiny["bytes"], str(tmp_path / "t.gguf")

  def case(i):
    with open(path, "wb") as f:
      f.write(data[:int(rng.integers(0, len(data)))])
    _load(path)
    pytest.fail(f"case {i}: a truncated file loaded")

  out = _run_cases(_cases(40), case)
  assert out["ok"] == 0


HOSTILE = [0, -1, 1, 2**31, 2**63 - 1, 2**64, 1.5, float("nan"), float("inf"), -0.0, True, False, "abc", "", None,
           [], [1, 2], {"a": 1}, "\udcff", 10**30, 30, 64, 3]


def test_fuzz_gguf_metadata_values(tiny):
  """Random metadata keys set to hostile values of every type (what a rebuilt file with GGUFWriter can hold)."""
  rng = np.random.default_rng(27)
  g = read_gguf(tiny["path"])
  keys = sorted(g.metadata) + ["llama.attention.key_length", "llama.rope.scaling.type", "tokenizer.ggml.tokens",
                               "tokenizer.ggml.merges", "llama.attention.sliding_window"]

  def case(i):
    meta = dict(g.metadata)
    for _ in range(int(rng.integers(1, 3))):
      key = keys[int(rng.integers(len(keys)))]
      meta[key] = HOSTILE[int(rng.integers(len(HOSTILE)))]
    mutated = GGUFFile(g.path, meta, g.tensors, g.types)
    cfg = config_from_gguf(mutated)
    params_from_gguf(mutated, cfg)

  print(_run_cases(_cases(200), case))


def test_fuzz_tokenizer_fields():
  rng = np.random.default_rng(28)
  tokens = [chr(c) for c in range(33, 127)] + ["ab", "<|im_end|>"]
  base = {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": [1] * (len(tokens) - 1) + [3],
          "tokenizer.ggml.merges": ["a b"], "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm",
          "tokenizer.ggml.eos_token_id": len(tokens) - 1, "tokenizer.chat_template": "{{ messages[0]['content'] }}"}
  keys = sorted(base)
  hostile = HOSTILE + [["a b c"], ["zz yy"], ["a"], [1, "a b"], "{{ 'a'*10**9 }}", "{% if %}", "llama-bpe", "t5"]

  def case(i):
    meta = dict(base)
    meta[keys[int(rng.integers(len(keys)))]] = hostile[int(rng.integers(len(hostile)))]
    data = tokenizer_data(GGUFFile("fuzz.gguf", meta, {}, {}))
    tok = Tokenizer.from_tokenizer_data(data, [0], "fuzz.gguf")
    tok.decode(tok.encode(tok.apply_chat_template([{"role": "user", "content": "ab c"}])))

  print(_run_cases(_cases(200), case))


def test_fuzz_hf_config_values():
  rng = np.random.default_rng(29)
  base = config_to_hf(TINY)
  keys = sorted(base) + ["rope_scaling", "head_dim"]
  hostile = HOSTILE + [{"rope_type": "yarn", "factor": float("nan")}, {"type": "dynamic", "factor": "2"}]

  def case(i):
    hf = dict(base)
    for _ in range(int(rng.integers(1, 3))):
      hf[keys[int(rng.integers(len(keys)))]] = hostile[int(rng.integers(len(hostile)))]
    if rng.random() < 0.05:
      hf = hostile[int(rng.integers(len(hostile)))]
    config_from_hf(hf, "config.json")

  print(_run_cases(_cases(200), case))


def test_fuzz_safetensors_bytes(tmp_path):
  """Byte mutations of model.safetensors: its JSON header (names, dtypes, shapes, offsets) and data; a load that
  succeeds after a header mutation must give the original weights."""
  rng = np.random.default_rng(30)
  params = params_of(nnx.state(init_model(TINY, seed=2)))
  save_hf(str(tmp_path), TINY, params)
  want = _checksum(load_hf(str(tmp_path))[1])
  path = tmp_path / "model.safetensors"
  data = path.read_bytes()
  header_end = 8 + struct.unpack("<Q", data[:8])[0]

  def case(i):
    buf = bytearray(data)
    pos = int(rng.integers(0, header_end)) if rng.random() < 0.8 else int(rng.integers(0, len(buf)))
    buf[pos] = int(rng.integers(0, 256))
    if rng.random() < 0.1:
      buf = buf[:int(rng.integers(0, len(buf)))]
    path.write_bytes(bytes(buf))
    got = _checksum(load_hf(str(tmp_path))[1])
    if pos < header_end and len(buf) == len(data):
      assert got == want, f"case {i}: mutated safetensors header byte {pos} loaded silently"

  print(_run_cases(_cases(120), case))
  path.write_bytes(data)


def test_fuzz_chat_templates():
  rng = np.random.default_rng(31)
  pieces = ["{{ 'a'*", "10**", "9 }}", "{% for i in range(", "99999) %}", "{% endfor %}", "{{ messages[0]['content']",
            "|center(", "|replace('', 'xx')", " ~ ", "{% set ns = namespace(s='ab') %}", "{% set ns.s = ns.s ~ ns.s %}",
            "{{ ns.s }}", "{{ raise_exception('x') }}", "{% if %}", "}}", "{{ 1/0 }}", "{{ [1]*", "(2**62) }}",
            "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "{{ 'x'.ljust(", "{{ messages }}", "{{ (", ")|length }}"]
  limits = TemplateLimits(max_seconds=0.3)

  def case(i):
    template = "".join(pieces[int(j)] for j in rng.integers(0, len(pieces), int(rng.integers(1, 6))))
    out = render_chat_template(template, [{"role": "user", "content": "hi"}], limits=limits)
    assert len(out) <= TemplateLimits().max_output

  print(_run_cases(_cases(200), case))


def test_fuzz_eval_data(tmp_path):
  """Damaged JSONL data / results files: random bytes, cut lines, wrong types. Reading never raises (with a
  problems list) and only well-formed result records are kept."""
  rng = np.random.default_rng(32)
  good = json.dumps({"length": 512, "depth": 50.0, "id": "a", "score": 1.0}).encode()
  path = tmp_path / "r.jsonl"

  def case(i):
    lines = []
    for _ in range(int(rng.integers(1, 6))):
      line = bytearray(good)
      for _ in range(int(rng.integers(0, 3))):
        line[int(rng.integers(len(line)))] = int(rng.integers(0, 256))
      lines.append(bytes(line[:int(rng.integers(0, len(line) + 1))] if rng.random() < 0.2 else line))
    path.write_bytes(b"\n".join(lines))
    problems = []
    read_jsonl(str(path), problems)
    for r in load_results(str(path), problems):
      assert type(r["length"]) is int and (r.get("score") is None or isinstance(r["score"], (int, float)))
    assert all(isinstance(p[2], str) for p in problems)

  print(_run_cases(_cases(300), case))
