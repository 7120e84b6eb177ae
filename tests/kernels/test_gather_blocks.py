"""Decode, paged decode and block-sparse kernels (Triton and TPU targets, interpreted) vs their references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcjax.ops.decode import decode_reference
from lcjax.ops.mask import MaskSpec
from pallas_kernels.block_sparse import block_sparse_attention
from pallas_kernels.decode_attention import decode_attention, paged_decode_attention
from pallas_kernels.tpu_interpret import reset_on_failure
from tests.kernels.cases import assert_close, qkv

TARGETS = ["triton", "tpu"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("t,n,k,dtype,mask", [
    (1, 4, 2, jnp.float32, dict()),
    (3, 2, 1, jnp.float32, dict(window=9, sink=2)),
    (2, 4, 4, jnp.bfloat16, dict(causal=False)),
])
def test_decode_matches_lcjax_reference(target, t, n, k, dtype, mask):
  """Split-K dense decode (2 splits over 4 blocks) equals lcjax's decode reference (GQA, speculative T > 1)."""
  b, s, h = 2, 50, 64
  q, kk, v = qkv(b, t, s, n, k, h, dtype, seed=3, heads_major_cache=True)
  q_pos = jnp.asarray([[40 + i for i in range(t)], [17 + i for i in range(t)]], jnp.int32)
  with reset_on_failure():
    got = jax.jit(lambda q, kk, v: decode_attention(q, kk, v, target=target, q_positions=q_pos, block_size=16,
                                                    num_splits=2, softcap=6.0, interpret=True, **mask))(q, kk, v)
  want = jax.jit(lambda q, kk, v: decode_reference(q, kk, v, MaskSpec(q_positions=q_pos, **mask), scale=h ** -0.5,
                                                   softcap=6.0))(q, kk, v)
  assert_close(got, want, dtype)


@pytest.mark.parametrize("target", TARGETS)
def test_paged_decode_matches_reference(target):
  """Pages read through a page table (shared pool, ragged lengths, a length inside a page)."""
  b, n, k, h, c, pages = 2, 4, 2, 64, 8, 12
  keys = jax.random.split(jax.random.PRNGKey(5), 3)
  q = jax.random.normal(keys[0], (b, 1, n, h))
  kp, vp = (jax.random.normal(key, (k, pages, c, h)) for key in keys[1:])
  table = jnp.asarray([[3, 7, 1, 0, 11, 2], [5, 4, 9, 8, 6, 10]], jnp.int32)
  lengths = jnp.asarray([45, 17], jnp.int32)
  run = lambda target, **kw: jax.jit(lambda q: paged_decode_attention(  # noqa: E731
      q, kp, vp, table, lengths, target=target, **kw))(q)
  with reset_on_failure():
    got = run(target, num_splits=2, interpret=True)
  want = run("reference")
  assert_close(got, want, jnp.float32)
  # The reference itself: the same tokens laid out densely in logical order, through lcjax's decode reference.
  dense = lambda x: jnp.transpose(x[:, table], (1, 0, 2, 3, 4)).reshape(b, k, -1, h)  # noqa: E731
  mask = MaskSpec(q_positions=(lengths - 1)[:, None])
  oracle = jax.jit(lambda q: decode_reference(q, dense(kp), dense(vp), mask, scale=h ** -0.5))(q)
  assert_close(want, oracle, jnp.float32)


def _selection(b, k, num_blocks, m, counts, seed=0):
  rng = np.random.default_rng(seed)
  ids = np.stack([np.stack([rng.permutation(num_blocks)[:m] for _ in range(k)]) for _ in range(b)])
  return jnp.asarray(ids, jnp.int32), jnp.asarray(counts, jnp.int32)


@pytest.mark.parametrize("target", TARGETS)
def test_block_sparse_matches_reference(target):
  """Per-(batch, kv head) block lists with different counts, causal query positions and a length limit."""
  b, t, n, k, h, s, c = 2, 2, 4, 2, 64, 72, 8
  q, kk, v = qkv(b, t, s, n, k, h, seed=1, heads_major_cache=True)
  ids, counts = _selection(b, k, s // c, 5, [[5, 3], [1, 4]])
  kw = dict(block_size=c, q_positions=jnp.asarray([[60, 61], [30, 31]]), kv_lengths=jnp.asarray([62, 32]),
            softcap=4.0)
  with reset_on_failure():
    got = jax.jit(lambda q: block_sparse_attention(q, kk, v, ids, counts, target=target, num_splits=2,
                                                   interpret=True, **kw))(q)
  want = jax.jit(lambda q: block_sparse_attention(q, kk, v, ids, counts, target="reference", **kw))(q)
  assert_close(got, want, jnp.float32)
