"""Speculative decoding: greedy output == target greedy (chain and tree, dense and KV-method caches, batch > 1),
exact and Monte-Carlo losslessness of the sampling rule, statistics bounds, and bad input."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from lcjax.errors import CapacityError, ConfigError, ContextLengthError
from lcjax.inference import Generator, SamplingConfig
from lcjax.inference.drafters import ModelDrafter, PromptLookup
from lcjax.inference.kv_method import MethodGenerator, decode_scan
from lcjax.inference.spec_tree import (DraftTree, accept_probability, ancestor_mask, chain_parents, depths, residual,
                                       sample_accept, sampling_probs)
from lcjax.inference.speculative import Drafter, SpeculativeGenerator, check_tree_fits
from lcjax.kvcache.base import make_method
from lcjax.models.build import init_model
from tests.tiny import TINY, spread_tiny

PROMPTS = [[5, 6, 7, 8, 5, 6, 7, 9, 5, 6, 7, 8, 5], [3, 4, 3, 4, 3, 11, 12]]
NEW = 24


@pytest.fixture(scope="module")
def tiny():
  graphdef, state = nnx.split(spread_tiny())
  gen = Generator(TINY, graphdef, pad_to=16)
  ref = gen.generate(state, PROMPTS, max_new_tokens=NEW, stop_ids=[])
  return graphdef, state, gen, ref.tokens


class OracleTree(Drafter):
  """Test drafter: a 3-branch tree whose middle branch is the reference continuation (last token wrong in odd
  steps' row 1), the others wrong tokens: exercises tree paths, partial acceptance and per-row commits."""

  name = "oracle"

  def __init__(self, reference_history, gamma=3):
    self.ref = jnp.asarray(reference_history, jnp.int32)
    self.gamma, self.num_nodes, self.max_depth = gamma, 1 + 3 * gamma, gamma

  def draft(self, params, dstate, ctx, key, sampling):
    b, s = self.ref.shape
    idx = jnp.clip(ctx.lengths[:, None] + 1 + jnp.arange(self.gamma)[None], 0, s - 1)
    good = jnp.take_along_axis(self.ref, idx, axis=1)
    good = good.at[1, -1].set(jnp.where(dstate % 2 == 1, (good[1, -1] + 1) % 96, good[1, -1]))
    wrong = (good + 7) % 96
    tokens = jnp.concatenate([ctx.last[:, None], wrong, good, (wrong + 1) % 96], axis=1)
    return DraftTree(tokens, chain_parents(b, self.gamma, 3)), dstate + 1


def _history(prompts, outs):
  s = max(len(p) + len(o) for p, o in zip(prompts, outs)) + 8
  h = np.zeros((len(prompts), s), np.int32)
  for i, (p, o) in enumerate(zip(prompts, outs)):
    h[i, :len(p) + len(o)] = p + o
  return h


def test_greedy_chain_and_tree_equal_target_greedy(tiny):
  graphdef, state, gen, ref = tiny
  for drafter in (PromptLookup(3, branches=3),):  # a tree; chains: the model / LongSpec drafters below
    out = SpeculativeGenerator(gen, drafter).generate(state, PROMPTS, max_new_tokens=NEW, stop_ids=[])
    assert out.tokens == ref
    hist = np.asarray(out.accepted_hist)
    assert hist[0] == 0 and len(hist) == drafter.max_depth + 2      # accepted length per step in [1, gamma + 1]
    assert 1.0 <= out.mean_accepted <= drafter.max_depth + 1


def test_greedy_oracle_tree_and_model_drafter(tiny):
  graphdef, state, gen, ref = tiny
  oracle = SpeculativeGenerator(gen, OracleTree(_history(PROMPTS, ref))).generate(
      state, PROMPTS, max_new_tokens=NEW, stop_ids=[])
  assert oracle.tokens == ref
  assert oracle.mean_accepted > 3.0                                  # the true branch is found at every depth
  # an untrained 1-layer draft model (same tokenizer) and the target drafting for itself (everything accepted)
  small_cfg = TINY.replace(num_layers=1)
  small_def, small_state = nnx.split(init_model(small_cfg, seed=1))
  out = SpeculativeGenerator(gen, ModelDrafter(small_cfg, small_def, 3)).generate(
      state, PROMPTS, draft_params=small_state, max_new_tokens=NEW, stop_ids=[])
  assert out.tokens == ref


def test_greedy_with_sparse_kv_method_equals_method_greedy(tiny):
  graphdef, state, _, _ = tiny
  gen = MethodGenerator(TINY, graphdef, make_method("sink_window", budget=12, sink=2), pad_to=16)
  ref = gen.generate(state, PROMPTS, max_new_tokens=NEW, stop_ids=[]).tokens
  out = SpeculativeGenerator(gen, OracleTree(_history(PROMPTS, ref), gamma=2)).generate(
      state, PROMPTS, max_new_tokens=NEW, stop_ids=[])
  assert out.tokens == ref and out.mean_accepted > 2.0


def test_no_near_ties_in_the_reference(tiny):
  """Greedy comparisons are only meaningful away from ties: every top-2 logit gap of the reference is > 1e-4."""
  graphdef, state, gen, ref = tiny
  cache = gen.init_cache(2, 64)
  logits0, cache = gen.prefill(state, PROMPTS, cache)
  _, logits, _ = decode_scan(graphdef, state, cache, NEW - 1, tokens=np.asarray([r[:NEW - 1] for r in ref]))
  top2 = np.sort(np.asarray(logits), axis=-1)[..., -2:]
  assert (top2[..., 1] - top2[..., 0]).min() > 1e-4


# ---------------------------------------------------------------------------------------------- sampling rule
def _one_step_exact(p, q=None, k=1, tokens=None):
  """Exact output distribution of one recursive-rejection step at a node whose k children were drawn without
  replacement from q (every ordered draw enumerated), or are the given `tokens` (one-hot proposals); computed with
  the implemented `accept_probability` and `residual`."""
  v = len(p)
  out = np.zeros(v)
  draws = [(tuple(tokens), 1.0)] if tokens is not None else []
  for seq in ([] if tokens is not None else itertools.permutations(range(v), k)):
    prob, rem = 1.0, np.asarray(q, np.float64).copy()
    for x in seq:
      prob *= rem[x] / rem.sum()
      rem[x] = 0.0
    draws.append((seq, prob))
  for seq, prob in draws:
    pc, qc, stay = np.asarray(p, np.float32), np.array(q if q is not None else np.zeros(v), np.float64), 1.0
    for x in seq:
      r = np.eye(v)[x] if tokens is not None else qc / qc.sum()
      a = float(accept_probability(jnp.float32(pc[x]), jnp.float32(r[x])))
      out[x] += prob * stay * a
      stay *= 1.0 - a
      pc = np.asarray(residual(jnp.asarray(pc), jnp.asarray(r, jnp.float32)))
      qc[x] = 0.0
    out += prob * stay * pc
  return out


def test_one_step_distribution_is_exactly_p():
  p = np.asarray([.5, .2, .2, .1])
  q = np.asarray([.1, .6, .2, .1])
  assert np.allclose(_one_step_exact(p, q, 1), p, atol=1e-6)                  # the notes' worked example
  assert np.allclose(_one_step_exact(p, q, 2), p, atol=1e-6)                  # two children, no replacement
  assert np.allclose(_one_step_exact(p, q, 3), p, atol=1e-6)
  assert np.allclose(_one_step_exact(p, tokens=[1, 0]), p, atol=1e-6)         # one-hot proposals (argmax drafts)
  # the released LongSpec rule (resample from p on rejection) is not lossless here
  accept = q * np.minimum(1, p / q)
  assert not np.allclose(accept + (1 - accept.sum()) * p, p, atol=1e-3)


def _emitted_first(acc, tokens):
  """The first token each row emits."""
  first = jnp.take_along_axis(tokens, acc.path[:, 1:2], axis=1)[:, 0]
  return np.asarray(jnp.where(acc.n_acc >= 1, first, acc.next))


@pytest.mark.parametrize("children", [1, 2])
def test_sampler_chi_square(children):
  """200k rows through `sample_accept`: the first emitted token follows p (children drawn without replacement
  by Gumbel-top-k from q), at temperature 0.7 with top-p applied to both p and q."""
  n, v = 200_000, 5
  cfg = SamplingConfig(temperature=0.7, top_p=0.95)
  p_logits = jnp.log(jnp.asarray([.4, .25, .2, .1, .05]))
  q_logits = jnp.log(jnp.asarray([.1, .3, .3, .2, .1]))
  p = sampling_probs(p_logits[None], cfg)[0]
  q = sampling_probs(q_logits[None], cfg)[0]
  k1, k2 = jax.random.split(jax.random.PRNGKey(3))
  gumbel = jnp.log(jnp.maximum(q, 1e-30))[None] + jax.random.gumbel(k1, (n, v))
  drafted = jax.lax.top_k(gumbel, children)[1].astype(jnp.int32)                  # without replacement, in order
  tokens = jnp.concatenate([jnp.zeros((n, 1), jnp.int32), drafted], axis=1)
  parents = jnp.broadcast_to(jnp.asarray([-1] + [0] * children, jnp.int32), (n, 1 + children))
  probs = jnp.broadcast_to(q, (n, 1 + children, v))
  target = jnp.broadcast_to(p, (n, 1 + children, v))
  acc = jax.jit(sample_accept, static_argnums=3)(DraftTree(tokens, parents, probs), target, k2, 1)
  counts = np.bincount(_emitted_first(acc, tokens), minlength=v)
  expected = np.asarray(p, np.float64) * n
  keep = expected > 0
  assert counts[~keep].sum() == 0                                                 # top-p: nothing outside the nucleus
  assert stats.chisquare(counts[keep], expected[keep] / expected[keep].sum() * counts.sum()).pvalue > 1e-3


def test_tree_mask_and_depths():
  parents = jnp.asarray([[-1, 0, 0, 1, 3]])
  mask = np.asarray(ancestor_mask(parents))[0]
  assert mask[4].tolist() == [True, True, False, True, True]
  assert np.asarray(depths(jnp.asarray(mask)[None]))[0].tolist() == [0, 1, 1, 2, 3]


def test_sampled_generation_runs_and_respects_lengths(tiny):
  graphdef, state, gen, _ = tiny
  small_cfg = TINY.replace(num_layers=1)
  small_def, small_state = nnx.split(init_model(small_cfg, seed=1))
  out = SpeculativeGenerator(gen, ModelDrafter(small_cfg, small_def, 2)).generate(
      state, PROMPTS, draft_params=small_state, max_new_tokens=9, stop_ids=[], rng=jax.random.PRNGKey(0),
      sampling=SamplingConfig(temperature=1.0, top_k=20))
  assert [len(t) for t in out.tokens] == [9, 9]
  assert all(0 <= x < TINY.vocab_size for t in out.tokens for x in t)


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_input_raises(tiny):
  graphdef, state, gen, _ = tiny
  other = TINY.replace(vocab_size=64)
  with pytest.raises(ConfigError, match="vocabulary of 64"):
    SpeculativeGenerator(gen, ModelDrafter(other, nnx.split(init_model(other))[0], 2))
  for gamma in (0, -1):
    with pytest.raises(ConfigError, match="gamma"):
      PromptLookup(gamma)
  with pytest.raises(CapacityError, match="cache slots"):
    check_tree_fits(64, 40, 20, 5)
  with pytest.raises(ContextLengthError):
    SpeculativeGenerator(gen, PromptLookup(8)).generate(state, [[1] * 100], max_new_tokens=24)
