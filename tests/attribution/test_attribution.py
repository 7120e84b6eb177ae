"""TracLLM attribution: score functions on exact games, Shapley efficiency, search bookkeeping, the batched value
function against a step-by-step decode (tiny model), and a planted answer on the real SmolLM2."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lcjax.attribution import ScoreOptions, ValueFunction, attribute, mean_of_percent, score, split_context
from lcjax.attribution import attention_attribution, precision_recall, tracllm_search
from lcjax.attribution.value import _score_rows
from lcjax.errors import ConfigError, UnknownNameError


class Game:
  """v(S) over texts "t0 ".."t{n-1} ": additive weights plus a pairwise bonus (Shapley splits it equally)."""

  def __init__(self, weights, pair=(0, 2), bonus=3.0):
    self.w, self.pair, self.bonus, self.calls = list(weights), pair, bonus, 0
    self.texts = [f"t{i} " for i in range(len(weights))]

  def members(self, coalition):
    return {int(tok[1:]) for node in coalition for tok in node.split()}

  def __call__(self, coalitions):
    self.calls += len(coalitions)
    out = []
    for c in coalitions:
      s = self.members(c)
      out.append(sum(self.w[i] for i in s) + (self.bonus if set(self.pair) <= s else 0.0)
                 + 0.1 * math.sin(len(s)))  # a size-dependent term: marginals differ between permutations
    return np.array(out)


def brute_force_shapley(game, n):
  phi = np.zeros(n)
  for perm in itertools.permutations(range(n)):
    prefix = []
    for i in perm:
      before = game([[game.texts[j] for j in sorted(prefix)]])[0]
      prefix.append(i)
      phi[i] += game([[game.texts[j] for j in sorted(prefix)]])[0] - before
  return phi / math.factorial(n)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_exact_shapley_equals_brute_force(n):
  game = Game(np.linspace(-1, 2, n))
  np.testing.assert_allclose(score("exact_shapley", game, game.texts), brute_force_shapley(game, n), atol=1e-12)


@pytest.mark.parametrize("sh_n", [1, 2, 7])
def test_monte_carlo_shapley_efficiency(sh_n):
  game = Game([0.5, -1.0, 2.0, 0.0, 1.5])
  phi = score("shapley", game, game.texts, ScoreOptions(sh_n=sh_n, seed=sh_n))
  full, empty = game([game.texts, []])
  assert phi.sum() == pytest.approx(full - empty, abs=1e-9)
  assert game.calls == 2 + sh_n * 6  # N (m + 1) coalitions in one batch, + the check


def test_mean_of_percent_worked_values():
  values = [5, 1, 3, 2, 4, 0, -1, 6, 7, 8]
  assert mean_of_percent(values, 0.2) == 7.5
  assert mean_of_percent(values, 1.0) == pytest.approx(3.5)
  assert mean_of_percent([3, 9, 1, 4, 2], 0.2) == 9  # N=5, beta=0.2 -> the max


def test_planted_ranks_first_on_a_game():
  game = Game([0.0, 0.1, -0.2, 0.05, 6.0, 0.0, -0.1, 0.2], pair=(1, 3), bonus=0.5)
  for f in ("stc", "loo", "shapley", "denoised_shapley", "exact_shapley"):
    assert int(np.argmax(score(f, game, game.texts, ScoreOptions(sh_n=5)))) == 4, f
  assert attribute(game, game.texts, k=3).top(1)[0][0] == 4


def _stc_calls(levels):
  return sum(m + 1 for m in levels)


@pytest.mark.parametrize("n,k", [(16, 5), (13, 3), (9, 4), (5, 5), (3, 5), (1, 1)])
def test_search_bookkeeping(n, k):
  game = Game(np.random.default_rng(n).normal(size=n))
  res = tracllm_search(game, game.texts, k, "stc")
  assert len(res.ids) <= k and len(set(res.ids)) == len(res.ids) and res.ids == sorted(res.ids)
  assert len(res.scores) == len(res.ids) and all(np.isfinite(res.scores))
  assert game.calls == _stc_calls(res.scored_levels)
  assert all(m > k for m in res.scored_levels[:-1])
  if n <= k:  # the official code never scores here and crashes; we score the texts once
    assert res.scored_levels == [n] and res.ids == list(range(n))
  else:
    assert all(m > k for m in res.scored_levels)


def test_ensemble_weights_and_baselines():
  game = Game([0.0, 1.0, 0.0, 0.5], bonus=0.0)
  res = attribute(game, game.texts, k=5, score_funcs=("stc", "loo"), w=2.0)
  loo = dict(res.per_func["loo"])
  stc = dict(res.per_func["stc"])
  assert all(res.scores[i] == max(stc[i], 2 * loo[i]) for i in range(4))
  vanilla = attribute(game, game.texts, k=2, score_funcs=("loo",), search=False)
  assert [i for i, _ in vanilla.top(2)] == [1, 3]
  assert precision_recall([1, 3], [3]) == (0.5, 1.0) and precision_recall([], [1]) == (0.0, 0.0)


def test_bad_input():
  game = Game([1.0])
  with pytest.raises(UnknownNameError, match="unknown attribution score 'banzhaf'"):
    attribute(game, game.texts, score_funcs=("banzhaf",))
  with pytest.raises(ConfigError, match="no texts"):
    attribute(game, [], k=1)
  with pytest.raises(ConfigError, match="unknown segmentation level 'word'"):
    split_context("a b", "word")


def test_segmentation():
  text = " ".join(f"w{i}" for i in range(250))
  segs = split_context(text, "segment")
  assert [len(s.split()) for s in segs] == [100, 100, 50] and all(s.endswith(" ") for s in segs)
  assert split_context("a\n\nb", "paragraph") == ["\n\na", "\n\nb"]
  assert split_context("Dr. Smith paid 3.5 dollars. He left! Did he?", "sentence") == [
      "Dr. Smith paid 3.5 dollars.", "He left!", "Did he?"]
  assert split_context(["x", "y"], "segment") == ["x", "y"]


def test_value_equals_step_by_step_decode(tiny):
  from lcjax.inference import Generator

  texts = ["alpha beta gamma ", "delta epsilon ", "zeta eta theta iota "]
  compiled = _score_rows._cache_size()
  v = ValueFunction(tiny, "what is it?", "kappa lambda mu", batch=4, bucket=32)
  prompt, answer = v.prompt_ids(texts), v.answer_ids
  gen = Generator(tiny.cfg, tiny.graphdef, pad_to=16)
  logits, cache = gen.prefill(tiny.state, [prompt], gen.init_cache(1, 256))
  model = nnx.merge(tiny.graphdef, tiny.state)
  total = float(jax.nn.log_softmax(logits[0])[answer[0]])
  for tok, nxt in zip(answer[:-1], answer[1:]):
    step, cache = model(jnp.array([[tok]]), cache.lengths[:, None], cache=cache)
    cache = cache.__class__(**{**vars(cache), "lengths": cache.lengths + 1})
    total += float(jax.nn.log_softmax(step[0, 0])[nxt])
  batch = v([texts, [], texts[:1], texts[1:], texts])  # mixed lengths, one bucket, padded batch
  assert batch[0] == pytest.approx(total, abs=1e-4) and batch[4] == batch[0]
  assert v.calls == 5 and v.forwards == 4  # memoised repeat
  assert _score_rows._cache_size() == compiled + 1  # one compile serves every coalition of this bucket
  with pytest.raises(ConfigError, match="tokenises to nothing"):
    ValueFunction(tiny, "q", "   ")


def test_attention_attribution_tiny(tiny):
  texts = ["alpha beta gamma ", "delta epsilon ", "zeta eta theta iota "]
  mass = attention_attribution(tiny, "what is it?", texts, "kappa lambda")
  assert mass.shape == (3,) and np.all(mass > 0) and mass.sum() < 1.0


@pytest.mark.slow
def test_planted_answer_ranks_first_smollm2(smollm2):
  texts = ["The river town holds a market every Sunday where farmers sell apples. ",
           "Most of the houses near the harbour were painted blue last spring. ",
           "The vault code is 4817. ",
           "A small choir practises in the old church on Thursday evenings. "]
  v = ValueFunction(smollm2, "What is the vault code?", " 4817", bucket=16)
  for f in ("exact_shapley", "stc", "loo", "shapley", "denoised_shapley"):  # exact first: the rest are memo hits
    assert int(np.argmax(score(f, v, texts, ScoreOptions(sh_n=3)))) == 2, f
  assert v.forwards == 16  # exact Shapley's 2^4 coalitions cover every other score's
  result = attribute(v, texts, k=3)  # search levels: 2 nodes, 4 nodes (scored, keep 3), singletons (scored)
  assert result.top(1)[0][0] == 2
