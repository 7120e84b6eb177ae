"""Shared tiny inputs for the Pallas kernel tests (shapes keep every interpreted grid <= 64 steps)."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

H100 = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132, platform="gpu")


def gpu_device():
  """The abstract H100 that Triton lowering and the Mosaic GPU interpreter need on a CPU machine."""
  return jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((), (), abstract_device=H100))


def no_device():
  return contextlib.nullcontext()


def qkv(b, t, s, n, k, h, dtype=jnp.float32, seed=0, heads_major_cache=False):
  """Random q [B, T, N, H] and k, v [B, S, K, H] (or [B, K, S, H] with heads_major_cache)."""
  ks = jax.random.split(jax.random.PRNGKey(seed), 3)
  kv_shape = (b, k, s, h) if heads_major_cache else (b, s, k, h)
  return (jax.random.normal(ks[0], (b, t, n, h), dtype), jax.random.normal(ks[1], kv_shape, dtype),
          jax.random.normal(ks[2], kv_shape, dtype))


def segments(b, length, seed):
  """Document ids [B, L] with two random cuts per row."""
  rng = np.random.default_rng(seed)
  cuts = np.sort(rng.choice(np.arange(1, length), size=(b, 2), replace=True), axis=1)
  pos = np.arange(length)[None]
  return jnp.asarray((pos >= cuts[:, :1]).astype(np.int32) + (pos >= cuts[:, 1:]).astype(np.int32))


def assert_close(got, want, dtype):
  tol = dict(atol=2e-5, rtol=2e-5) if dtype == jnp.float32 else dict(atol=3e-2, rtol=3e-2)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32), **tol)


def dense_block_sparse(q, k, v, ids, counts, *, block_size, kv_lengths, q_positions=None, softcap=None):
  """Block-sparse attention as a dense masked softmax over the whole cache (the oracle of out and lse).

  Args:
    q: [B, T, N, H].  k, v: [B, K, S, H].  ids: [B, K, M] block ids (first `counts` [B, K] valid).
    kv_lengths: [B].  q_positions: [B, T] (given: causal).  softcap: logit cap.
  Returns:
    (out [B, T, N, H], lse [B, T, N]) fp32; rows that see no key give 0 and -inf.
  """
  b, t, n, h = q.shape
  kv_heads, s = k.shape[1], k.shape[2]
  member = jnp.zeros((b, kv_heads, -(-s // block_size)), bool).at[
      jnp.arange(b)[:, None, None], jnp.arange(kv_heads)[None, :, None], ids].max(
          jnp.arange(ids.shape[2]) < counts[..., None])
  pos = jnp.arange(s)
  ok = jnp.repeat(member, block_size, axis=2)[:, :, None, :s] & (pos < kv_lengths[:, None, None, None])
  if q_positions is not None:
    ok &= pos <= q_positions[:, None, :, None]                       # [B, K, T, S]
  ok = jnp.repeat(ok, n // kv_heads, axis=1)                          # [B, N, T, S]
  scores = jnp.einsum("btnh,bnsh->bnts", q, jnp.repeat(k, n // kv_heads, axis=1)) / np.sqrt(h)
  if softcap is not None:
    scores = softcap * jnp.tanh(scores / softcap)
  scores = jnp.where(ok, scores, -1e30)
  lse = jax.nn.logsumexp(scores, axis=-1, keepdims=True)
  out = jnp.einsum("bnts,bnsh->btnh", jnp.where(ok, jnp.exp(scores - lse), 0.0),
                   jnp.repeat(v, n // kv_heads, axis=1))
  lse = jnp.where(ok.any(-1), lse[..., 0], -jnp.inf)
  return out, jnp.transpose(lse, (0, 2, 1))
