"""LongSpec draft: Anchor-Offset positions, constant draft memory, the training lag rule, training lowers the
loss, greedy losslessness with an untrained and a trained draft, checkpoint round trip."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lcjax.errors import ConfigError
from lcjax.inference import Generator, SamplingConfig
from lcjax.inference.drafters import LongSpecDrafter, drafter_from_spec
from lcjax.inference.speculative import DraftContext, SpeculativeGenerator
from lcjax.models.longspec import LongSpecDraft, anchor_offset_positions, load_draft, save_draft
from lcjax.training.longspec import teacher_kv, train_longspec
from tests.tiny import TINY, spread_tiny

WINDOW = 8


@pytest.fixture(scope="module")
def models():
  tgraph, tstate = nnx.split(spread_tiny())
  dgraph, dstate = nnx.split(LongSpecDraft(TINY, window=WINDOW, key=jax.random.PRNGKey(1)))
  return tgraph, tstate, dgraph, dstate


@pytest.mark.parametrize("length", [100, 1000, 2000])
def test_anchor_offset_positions(length):
  rng = np.random.default_rng(0)
  for _ in range(50):
    pos = anchor_offset_positions(length, 32768, rng)
    assert len(pos) == length and np.all(np.diff(pos) > 0)
    if length > 1200:
      assert pos.tolist() == list(range(length))
      continue
    # pos = [0 .. sink-1] ++ [sink + O .. length-1 + O] for some sink in 0..4 and offset O >= 0
    fits = [s for s in range(5) if pos[:s].tolist() == list(range(s))
            and len(set((pos[s:] - np.arange(s, length)).tolist())) == 1 and pos[s] >= s]
    assert fits
    assert pos.max() < min(30000, 32768 - 1000)


def test_draft_memory_is_constant_in_context(models):
  tgraph, tstate, dgraph, dstate = models
  drafter = LongSpecDrafter(TINY, tgraph, dgraph, WINDOW, 3)
  params = {"draft": dstate, "target": tstate}
  shapes = [jax.eval_shape(drafter._start_fn, params, jnp.zeros((1, n), jnp.int32), jnp.asarray([n]))
            for n in (1024, 8192)]
  nbytes = [sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(s)) for s in shapes]
  assert nbytes[0] == nbytes[1] > 0
  assert shapes[0].k.shape[1] == WINDOW + 3 + 1


def test_cross_attention_hides_the_newest_pad_target_keys(models):
  tgraph, tstate, dgraph, dstate = models
  target, draft = nnx.merge(tgraph, tstate), nnx.merge(dgraph, dstate)
  tokens = jax.random.randint(jax.random.PRNGKey(2), (1, 12), 0, TINY.vocab_size)
  pos = jnp.arange(12)[None] + 100
  k, v = teacher_kv(tgraph)(tstate, tokens, pos)
  pad = jnp.asarray([3])
  run = jax.jit(lambda k, v: draft.train_logits(target, tokens, pos, k, v, pad))
  base, bumped = run(k, v), run(k.at[:, 8:].add(5.0), v.at[:, 8:].add(5.0))
  np.testing.assert_allclose(np.asarray(bumped[0, :11]), np.asarray(base[0, :11]), atol=1e-5)  # t - 3 < 8
  assert not np.allclose(np.asarray(bumped[0, 11]), np.asarray(base[0, 11]), atol=1e-4)


def test_greedy_lossless_untrained_and_trained_and_checkpoint(models, tmp_path):
  tgraph, tstate, dgraph, dstate = models
  prompts = [[5, 6, 7, 8, 5, 6, 7, 9, 5, 6, 7, 8, 5], [3, 4, 3, 4, 3, 11, 12]]
  gen = Generator(TINY, tgraph, pad_to=16)
  ref = gen.generate(tstate, prompts, max_new_tokens=16, stop_ids=[]).tokens
  spec = SpeculativeGenerator(gen, LongSpecDrafter(TINY, tgraph, dgraph, WINDOW, 3))
  untrained = spec.generate(tstate, prompts, draft_params={"draft": dstate, "target": tstate}, max_new_tokens=16,
                            stop_ids=[])
  assert untrained.tokens == ref
  stream = np.tile(np.arange(10, 30), 40)
  trained, history = train_longspec((TINY, tgraph, tstate), (dgraph, dstate), stream, steps=3, seq_len=24,
                                    batch=2, lr=3e-3, max_len=4096)
  assert history[-1]["loss"] < history[0]["loss"]
  out = spec.generate(tstate, prompts, draft_params={"draft": trained, "target": tstate}, max_new_tokens=16,
                      stop_ids=[])
  assert out.tokens == ref
  save_draft(str(tmp_path / "d"), trained, WINDOW)
  _, loaded, window = load_draft(str(tmp_path / "d"), TINY)
  assert window == WINDOW
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(trained)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_unknown_drafter_spec_raises(models):
  with pytest.raises(ConfigError, match="prompt_lookup, model:PATH, longspec:DIR"):
    drafter_from_spec("ngram", 4, None)


def test_tree_drafting_top1_path_equals_chain_and_tree_is_lossless(models):
  """A width-1 beam tree is the greedy chain (the ring + tree-buffer hybrid attention equals the ring path), and
  greedy output with a [2, 3, 3] draft tree equals the target's."""
  tgraph, tstate, dgraph, dstate = models
  prompts = [[5, 6, 7, 8, 5, 6, 7, 9, 5, 6, 7, 8, 5], [3, 4, 3, 4, 3, 11, 12]]
  gen = Generator(TINY, tgraph, pad_to=16)
  params = {"draft": dstate, "target": tstate}
  cache = gen.init_cache(2, 48)
  _, cache = gen.prefill(tstate, prompts, cache)
  hist = np.zeros((2, 48), np.int32)
  for i, p in enumerate(prompts):
    hist[i, :len(p)] = p
  hist[:, [len(p) for p in prompts]] = 0
  hist[[0, 1], [len(p) for p in prompts]] = [17, 23]                      # the "last verified" tokens
  ctx = DraftContext(jnp.asarray(hist), cache.lengths, cache)
  trees = []
  for kwargs in (dict(gamma=3), dict(tree_shape=(1, 1, 1))):
    drafter = LongSpecDrafter(TINY, tgraph, dgraph, WINDOW, **kwargs)
    ring = drafter.start(params, prompts, 48)
    trees.append(jax.jit(lambda r, c, d=drafter: d.draft(params, r, c, None, SamplingConfig())[0])(ring, ctx))
  np.testing.assert_array_equal(np.asarray(trees[0].tokens), np.asarray(trees[1].tokens))
  np.testing.assert_array_equal(np.asarray(trees[0].parents), np.asarray(trees[1].parents))
  ref = gen.generate(tstate, prompts, max_new_tokens=16, stop_ids=[]).tokens
  tree = SpeculativeGenerator(gen, LongSpecDrafter(TINY, tgraph, dgraph, WINDOW, tree_shape=(2, 3, 3)))
  out = tree.generate(tstate, prompts, draft_params=params, max_new_tokens=16, stop_ids=[])
  assert out.tokens == ref and len(out.accepted_hist) == 5
