"""Exactness on the bundled SmolLM2-135M (fp32): every KV method with a budget covering the cache gives the dense
logits at a short real-text prompt (prefill and decode). One prefill (with A^2ATS's query statistics) serves every
method through `rewrap`."""

import numpy as np
import pytest

from lcjax.inference import Generator
from lcjax.inference.kv_method import MethodGenerator, forced_logits
from lcjax.kvcache import KV_METHODS, make_method
from lcjax.kvcache.base import rewrap
from lcjax.kvcache.specontext import forced_logits_specontext, init_probe_cache, truncated

MAX_LEN, STEPS = 192, 3


@pytest.fixture(scope="module")
def prefilled(smollm2):
  from lcjax.assets import haystack_text

  cfg, graphdef, state = smollm2.cfg, smollm2.graphdef, smollm2.state
  prompt = smollm2.tokenizer.encode(haystack_text()[:2000])[:128]
  tokens = np.asarray(smollm2.tokenizer.encode(" the castle is hidden under the bridge")[:STEPS])[None]
  gen = Generator(cfg, graphdef, pad_to=64)
  logits, cache = gen.prefill(state, [prompt], gen.init_cache(1, MAX_LEN))
  dense = forced_logits(graphdef, state, cache, tokens)
  mgen = MethodGenerator(cfg, graphdef, make_method("a2ats", budget="all"), pad_to=64)
  mgen.context = len(prompt)
  first, mcache = mgen.prefill(state, [prompt], mgen.init_cache(1, MAX_LEN))
  return prompt, tokens, np.asarray(logits), np.asarray(first), dense, mcache


def _close(got, want):
  """fp32 agreement: 1e-5 relative to the logits' scale (|logits| reach ~20; 30 layers of reordered sums)."""
  scale = float(np.abs(want).max())
  np.testing.assert_allclose(got, want, atol=1e-5 * scale, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in KV_METHODS.names() if n != "sink_kv"])
def test_bundled_full_budget_equals_dense(smollm2, prefilled, name):
  prompt, tokens, first_dense, first, dense, mcache = prefilled
  cfg, graphdef, state = smollm2.cfg, smollm2.graphdef, smollm2.state
  _close(first, first_dense)
  cache = rewrap(mcache, cfg, make_method(name, budget="all"), len(prompt))
  if name == "specontext":
    scfg, sg, sst = truncated(cfg, state, 2)
    _, small = Generator(scfg, sg, pad_to=64).prefill(sst, [prompt], init_probe_cache(scfg, 1, MAX_LEN))
    out, _ = forced_logits_specontext(graphdef, sg, ((1, 0), (1, 4)), state, sst, tokens, cache, small)
  else:
    out = forced_logits(graphdef, state, cache, tokens)
  print(name, "max |method - dense| =", float(np.abs(out - dense).max()), "of", float(np.abs(dense).max()))
  _close(out, dense)
