"""ops.linear_attention: blocked == naive == recurrent, gradients, state passing, segments, limits, decay schedules."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.errors import ImplUnavailableError, ShapeError, UnknownNameError
from lcjax.ops import linear_attention as _linear_attention
from lcjax.ops.linear_decay import alibi_slopes, decay_rates
from tests.kernels.cases import segments

B, T, N, K, H = 2, 45, 4, 2, 8
RATES = jnp.asarray([0.7, 0.1, 0.01, 1e-5])


@functools.cache
def _jitted(**static):
  return jax.jit(functools.partial(_linear_attention, **static))


def linear_attention(q, k, v, decay, *, initial_state=None, segment_ids=None, **static):
  """`ops.linear_attention`, jitted per static option set (eager dispatch of scans is slow on a busy CPU)."""
  return _jitted(**static)(q, k, v, decay, initial_state=initial_state, segment_ids=segment_ids)


def _inputs(t=T, seed=0):
  ks = jax.random.split(jax.random.PRNGKey(seed), 4)
  q = jax.random.normal(ks[0], (B, t, N, H))
  k, v = (jax.random.normal(kk, (B, t, K, H)) for kk in ks[1:3])
  return q, k, v, jax.random.normal(ks[3], (B, N, H, H))


def _close(got, want):
  """rtol 1e-4 of max|want| (q.k is not scaled, so outputs are large)."""
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-4 * float(np.abs(w).max()), rtol=0)


@pytest.fixture(scope="module")
def oracle():
  q, k, v, s0 = _inputs()
  seg = segments(B, T, seed=3)
  out = linear_attention(q, k, v, RATES, initial_state=s0, segment_ids=seg, return_state=True, impl="reference")
  return (q, k, v, s0, seg), out


@pytest.mark.parametrize("impl,block", [("recurrent", None), ("xla_blocked", 8), ("xla_blocked", 16),
                                        ("xla_blocked", 64)])
def test_impls_match_the_naive_form_with_segments_and_state(oracle, impl, block):
  (q, k, v, s0, seg), want = oracle
  got = linear_attention(q, k, v, RATES, initial_state=s0, segment_ids=seg, return_state=True, impl=impl,
                         block_size=block)
  _close(got, want)


def _loss(impl, seg, block=16):
  def f(q, k, v, rates, s0):
    o, s = _linear_attention(q, k, v, rates, initial_state=s0, segment_ids=seg, return_state=True, impl=impl,
                             block_size=block)
    return jnp.sum(o * jnp.cos(o)) + jnp.sum(jnp.sin(s))
  return jax.jit(jax.grad(f, argnums=(0, 1, 2, 3, 4)))


@pytest.mark.parametrize("impl", ["recurrent", "xla_blocked"])
def test_gradients_match_the_reference_including_decay_and_initial_state(oracle, impl):
  (q, k, v, s0, seg), _ = oracle
  _close(_loss(impl, seg)(q, k, v, RATES, s0), _loss("reference", seg)(q, k, v, RATES, s0))


def test_prefill_then_decode_equals_forward_on_t_plus_1():
  q, k, v, _ = _inputs(T + 1)
  full = linear_attention(q, k, v, RATES, impl="xla_blocked", block_size=16)
  _, state = linear_attention(q[:, :T], k[:, :T], v[:, :T], RATES, impl="xla_blocked", block_size=16,
                              return_state=True)
  step = linear_attention(q[:, T:], k[:, T:], v[:, T:], RATES, initial_state=state, impl="recurrent")
  _close(step, full[:, T:])


def test_state_passing_over_a_split_equals_one_pass():
  q, k, v, s0 = _inputs()
  want = linear_attention(q, k, v, RATES, initial_state=s0, impl="xla_blocked", block_size=8, return_state=True)
  a = 19
  o1, s1 = linear_attention(q[:, :a], k[:, :a], v[:, :a], RATES, initial_state=s0, impl="xla_blocked",
                            block_size=8, return_state=True)
  o2, s2 = linear_attention(q[:, a:], k[:, a:], v[:, a:], RATES, initial_state=s1, impl="xla_blocked",
                            block_size=8, return_state=True)
  _close((jnp.concatenate([o1, o2], 1), s2), want)


def test_segment_ids_reset_the_state_exactly():
  q, k, v, _ = _inputs()
  seg = jnp.asarray(np.repeat([[0] * 20 + [1] * (T - 20)], B, 0))
  packed = linear_attention(q, k, v, RATES, segment_ids=seg, impl="xla_blocked", block_size=16)
  second = linear_attention(q[:, 20:], k[:, 20:], v[:, 20:], RATES, impl="xla_blocked", block_size=16)
  first = linear_attention(q[:, :20], k[:, :20], v[:, :20], RATES, impl="xla_blocked", block_size=16)
  _close(packed, jnp.concatenate([first, second], 1))


def test_limits_lambda_one_and_lambda_to_zero():
  q, k, v, _ = _inputs(t=13)
  kk, vv = jnp.repeat(k, N // K, 2), jnp.repeat(v, N // K, 2)
  ones = linear_attention(q, k, v, jnp.zeros(N), impl="xla_blocked", block_size=4)
  causal = jnp.einsum("btnh,bsnh,ts,bsne->btne", q, kk, jnp.tril(jnp.ones((13, 13))), vv)
  _close(ones, causal)
  zero = linear_attention(q, k, v, jnp.full(N, 80.0), impl="xla_blocked", block_size=4)
  _close(zero, jnp.einsum("btnh,btnh,btne->btne", q, kk, vv))


def test_slopes_and_schedules_match_the_notes():
  np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -(i + 1) for i in range(8)])
  s64 = alibi_slopes(64)
  np.testing.assert_allclose(s64, [2.0 ** (-(i + 1) / 8) for i in range(64)])
  assert s64[0] == pytest.approx(0.91700404, abs=1e-7) and s64[-1] == pytest.approx(0.00390625)
  np.testing.assert_allclose(decay_rates("minimax", 8, 79, 80), alibi_slopes(8) * 1e-5)
  np.testing.assert_allclose(decay_rates("minimax", 8, 0, 80), alibi_slopes(8) * (1 + 1e-5))
  np.testing.assert_allclose(decay_rates("transnormer", 4, 1, 4), [0, 1.5, 3.0, 4.5])


def test_bad_input_raises_named_errors():
  q, k, v, _ = _inputs(t=8)
  with pytest.raises(UnknownNameError, match="decay schedule 'alibi'"):
    decay_rates("alibi", 4, 0, 2)
  with pytest.raises(UnknownNameError, match="linear attention impl 'fast'"):
    linear_attention(q, k, v, RATES, impl="fast")
  with pytest.raises(ShapeError, match="head dim"):
    linear_attention(q, k[..., :4], v[..., :4], RATES)
  with pytest.raises(ShapeError, match="segment_ids"):
    linear_attention(q, k, v, RATES, segment_ids=jnp.zeros((B, 9), jnp.int32))
  with pytest.raises(ShapeError, match="decay"):
    linear_attention(q, k, v, RATES[:3])
  with pytest.raises(ImplUnavailableError, match="pallas_tpu"):
    linear_attention(q, k, v, RATES, impl="pallas_tpu")
  with pytest.raises(ShapeError, match="power of two"):
    linear_attention(q, k, v, RATES, impl="pallas_triton", block_size=24, interpret=True)
