"""Every KV method is an evaluation backend; with a budget covering the cache it generates the dense tokens."""

import pytest
from flax import nnx

from lcjax.checkpoint.pretrained import Pretrained
from lcjax.errors import UnknownNameError
from lcjax.eval.runner import KV_BACKENDS, EvalConfig
from lcjax.kvcache import KV_METHODS
from lcjax.models.build import init_model
from tests.tiny import TINY


def test_every_method_is_a_backend():
  assert set(KV_METHODS.names()) <= set(KV_BACKENDS.names())
  with pytest.raises(UnknownNameError, match="unknown KV method 'retro'"):
    EvalConfig(tasks=["niah"], kv=["retro"]).validate()


def test_method_backends_generate_the_dense_tokens_at_full_budget():
  graphdef, state = nnx.split(init_model(TINY, seed=3))
  pre = Pretrained(TINY, graphdef, state, None, "tiny")
  prompt = [5 + (7 * i) % 80 for i in range(50)]
  want = KV_BACKENDS.get("dense")(pre)(prompt, 8)
  for name in ("retrolm", "squeezed"):
    got = KV_BACKENDS.get(name)(pre, budget="all", method_options={"squeezed": {"clusters": 4}})(prompt, 8)
    assert got == want, name
