"""Parity with HF transformers (torch CPU, loading the same GGUF with gguf_file=), run in the peers environment."""

import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.assets import haystack_text
from lcjax.inference import Generator
from lcjax.models.llama import forward
from lcjax.peers import call_peer, peer_python

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(peer_python() is None, reason="run `make peers` (make test does)")]


def _prompt_ids(tokenizer, n=64):
  text = tokenizer.apply_chat_template([{"role": "user", "content": haystack_text()[:2000]}])
  return tokenizer.encode(text)[:n]


def test_logits_parity(smollm2, smollm2_path, tmp_path):
  ids = _prompt_ids(smollm2.tokenizer)
  assert len(ids) == 64
  ans = call_peer("hf_peer.py", {"op": "logits", "gguf": smollm2_path, "tokens": ids, "out": str(tmp_path)})
  assert ans["tied"] is True
  hf = np.load(tmp_path / "logits.npy")
  ours = np.asarray(jax.jit(lambda s, t: forward(smollm2.graphdef, s, t)[0])(smollm2.state, jnp.asarray([ids]))[0])
  assert hf.shape == ours.shape == (64, 49152)
  assert np.max(np.abs(ours - hf)) < 1e-3


def test_greedy_32_tokens_identical(smollm2, smollm2_path):
  ids = _prompt_ids(smollm2.tokenizer)
  hf = call_peer("hf_peer.py", {"op": "greedy", "gguf": smollm2_path, "tokens": ids, "max_new_tokens": 32})
  gen = Generator(smollm2.cfg, smollm2.graphdef)
  ours = gen.generate(smollm2.state, [ids], max_new_tokens=32, stop_ids=[])
  assert ours.tokens[0] == hf["tokens"]


def _tokenizer_strings() -> list[str]:
  rng = random.Random(0)
  text = haystack_text()
  sentences = [s.strip() for s in text.split(".") if 20 < len(s.strip()) < 300]
  strings = rng.sample(sentences, 160)
  strings += [text[i:i + 400] for i in rng.sample(range(len(text) - 400), 20)]
  strings += [
      "def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
      "import numpy as np\n\n\nclass A:\n\tpass\n", "SELECT * FROM t WHERE id = 42;", "<div class='x'>&nbsp;</div>",
      "λx. x + 1", "naïve café façade coöperate", "Grüße aus Köln — «quotes»", "日本語のテキストです。", "中文测试，你好世界！",
      "한국어 문장입니다", "Привет, мир!", "مرحبا بالعالم", "עברית", "ελληνικά", "🙂🚀 emoji 👍🏽 family 👨‍👩‍👧",
      "tab\tseparated\tvalues", "   leading spaces", "trailing spaces   ", "multiple     spaces", "\n\n\nnewlines\n\n",
      "\r\nwindows\r\nlines", " \t \n mixed whitespace \u00a0nbsp", "", " ", "a", "123", "3.14159 2.71828",
      "phone 555-0100, zip 02139, year 2024", "1,000,000 and 1_000_000", "x1y2z3", "UPPER lower MiXeD",
      "don't won't it's we'll they're I'm you've", "email@example.com https://example.org/path?q=1#frag",
      "<|im_start|>user\nhello<|im_end|>", "<|endoftext|> after end", "a<|im_end|>b", "<jupyter_code>print(1)",
      "\\n literal backslash-n", "quotes \"double\" and 'single'", "math: ∑ ∫ √ ∞ ≤ ≥ ≠", "⌘⌥⇧ keys", "\u200b zero width",
  ]
  strings += ["".join(rng.choice("ab \n\t1é中🙂.,") for _ in range(rng.randint(1, 40))) for _ in range(40)]
  return strings


def _whitespace_before_digit(s: str) -> bool:
  return any(a.isspace() and b.isdigit() for a, b in zip(s, s[1:]))


def test_tokenizer_parity_with_hf(smollm2, smollm2_path):
  """HF-compatible mode equals HF's GGUF tokenizer on every string; the default (llama.cpp's digit split) equals
  it wherever no whitespace precedes a digit (the one place HF's converter departs from the model's tokenizer)."""
  from lcjax.checkpoint.gguf import read_gguf, tokenizer_data
  from lcjax.data.tokenizer import Tokenizer

  strings = _tokenizer_strings()
  assert len(strings) >= 200
  hf = call_peer("hf_peer.py", {"op": "tokenize", "gguf": smollm2_path, "texts": strings})["ids"]
  hf_mode = Tokenizer.from_tokenizer_data(tokenizer_data(read_gguf(smollm2_path)), (2,), pre_tokenizer="gpt2")
  assert [hf_mode.encode(s) for s in strings] == hf
  ours = [smollm2.tokenizer.encode(s) for s in strings]
  same = [(s, a, b) for s, a, b in zip(strings, ours, hf) if not _whitespace_before_digit(s)]
  assert len(same) >= 200
  assert [a for _, a, _ in same] == [b for _, _, b in same]
  for s, ids in zip(strings, ours):
    if "<|" not in s and "<jupyter" not in s:
      assert smollm2.tokenizer.decode(ids) == s


def test_tokenizer_parity_with_llamacpp(smollm2, smollm2_path):
  """The default tokenizer equals llama.cpp's on every string (digit split included)."""
  strings = _tokenizer_strings()
  try:
    ref = call_peer("llamacpp_peer.py", {"op": "tokenize", "gguf": smollm2_path, "texts": strings})["ids"]
  except RuntimeError as e:
    if "No module named 'llama_cpp'" in str(e):
      pytest.skip("llama-cpp-python is not installed in the peers environment (make peers)")
    raise
  ours = [smollm2.tokenizer.encode(s) for s in strings]
  assert ours == ref
