"""Draft trees and the acceptance rules of speculative decoding (greedy and exactly lossless sampling).

A draft tree for B rows has T nodes (static): node 0 is the last verified token, every other node a draft token
whose parent has a smaller index (`parents[b, 0] = -1`). A chain of gamma tokens is the tree with parents
[-1, 0, 1, ..., gamma - 1]. The target scores every node in one pass; then per row:

* greedy: a node is accepted iff its parent is accepted and its token is the target's argmax after its parent;
  the deepest accepted node's path is emitted plus the target's argmax there (the bonus token).
* sampling (lossless; Leviathan et al. 2023, recursive over siblings as in SpecInfer / RSD): at the current node
  with target distribution p and proposal r for its next child x (in index order): accept x with probability
  min(1, p(x) / r(x)) and move to x; otherwise p <- norm(max(p - r, 0)) and try the next child. When no child is
  left, the emitted token is sampled from p (the residual, or the target at a leaf).
  The proposal r of a child is what the drafter drew it from: stochastic drafters draw the children of a node
  without replacement from q (the node's draft distribution), so the k-th child's proposal is q with the earlier
  siblings zeroed and renormalised; deterministic drafters (argmax, n-gram lookup) have r = one-hot(x).
  Each step's output is then exactly distributed as p: P(out = y) = r(y) min(1, p(y)/r(y)) + (1 - beta) res(y) = p(y).
  (LongSpec's released code resamples from p on rejection and indexes p by node id: not lossless; see the notes.)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lcjax.inference.sampling import SamplingConfig, filter_logits


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DraftTree:
  """A drafter's proposal.

  Attributes:
    tokens: [B, T] int32, node 0 = the last verified token.  parents: [B, T] int32 (parents[:, 0] = -1, parent < node).
    probs: [B, T, V] fp32 draft distribution at each node from which its children were drawn (without replacement,
      in index order), or None for a deterministic drafter (one-hot proposals).
  """

  tokens: jax.Array
  parents: jax.Array
  probs: jax.Array | None = None


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Acceptance:
  """The verified outcome of one step per row.

  Attributes:
    path: [B, D + 1] int32 node index at each depth of the accepted path (path[:, 0] = 0; entries past n_acc are 0).
    n_acc: [B] int32 accepted draft tokens (0..D).  next: [B] int32 the target's token after the path.
  """

  path: jax.Array
  n_acc: jax.Array
  next: jax.Array

  def emitted(self, tokens: jax.Array) -> jax.Array:
    """[B, D + 1] tokens emitted this step: the accepted draft tokens then `next` (valid where d <= n_acc)."""
    draft = jnp.take_along_axis(tokens, self.path[:, 1:], axis=1)
    draft = jnp.concatenate([draft, jnp.zeros_like(draft[:, :1])], axis=1)
    return jnp.where(jnp.arange(draft.shape[1])[None] == self.n_acc[:, None], self.next[:, None], draft)


def chain_parents(batch: int, gamma: int, branches: int = 1) -> jax.Array:
  """Parents [B, 1 + branches * gamma] of `branches` chains of gamma tokens hanging from the root."""
  par = [-1]
  for b in range(branches):
    first = 1 + b * gamma
    par += [0] + list(range(first, first + gamma - 1))
  return jnp.broadcast_to(jnp.asarray(par, jnp.int32), (batch, len(par)))


def ancestor_mask(parents: jax.Array) -> jax.Array:
  """tree_mask [B, T, T] bool: [b, i, j] iff node j is node i or one of its ancestors."""
  b, t = parents.shape
  eye = jnp.broadcast_to(jnp.eye(t, dtype=bool), (b, t, t))

  def one(i, anc):
    par = jnp.take_along_axis(anc, jnp.clip(parents[:, i], 0)[:, None, None], axis=1)[:, 0]   # [B, T]
    row = eye[:, i] | (par & (parents[:, i] >= 0)[:, None])
    return anc.at[:, i].set(row)

  return jax.lax.fori_loop(1, t, one, eye)


def depths(tree_mask: jax.Array) -> jax.Array:
  """[B, T] int32 depth of each node (root 0) from its ancestor mask."""
  return jnp.sum(tree_mask, axis=-1, dtype=jnp.int32) - 1


def greedy_accept(tree: DraftTree, target_logits: jax.Array, max_depth: int) -> Acceptance:
  """Greedy acceptance: target_logits [B, T, V] (the target's next-token logits after each node) -> Acceptance."""
  b, t = tree.tokens.shape
  best = jnp.argmax(target_logits, axis=-1).astype(jnp.int32)                           # [B, T]
  rows = jnp.arange(b)

  def visit(i, carry):
    cur, depth, path = carry
    take = (tree.parents[:, i] == cur) & (tree.tokens[:, i] == best[rows, cur])
    depth = jnp.where(take, depth + 1, depth)
    path = jnp.where(take[:, None] & (jnp.arange(max_depth + 1)[None] == depth[:, None]), i, path)
    return jnp.where(take, i, cur), depth, path

  zeros = jnp.zeros((b,), jnp.int32)
  cur, depth, path = jax.lax.fori_loop(1, t, visit, (zeros, zeros, jnp.zeros((b, max_depth + 1), jnp.int32)))
  return Acceptance(path, depth, best[rows, cur])


def sampling_probs(logits: jax.Array, cfg: SamplingConfig) -> jax.Array:
  """Distributions [..., V] fp32 the sampler draws from: softmax of the temperature-scaled, top-k / top-p filtered
  logits. Applied to target and draft logits alike (so both sides see the same transformation)."""
  shape = logits.shape
  flat = filter_logits(logits.reshape(-1, shape[-1]).astype(jnp.float32) / cfg.temperature, cfg.top_k, cfg.top_p)
  return jax.nn.softmax(flat, axis=-1).reshape(shape)


def residual(p: jax.Array, r: jax.Array) -> jax.Array:
  """norm(max(p - r, 0)) over the last axis; p itself where the difference has no mass (then p == r and a
  rejection has probability 0)."""
  d = jnp.maximum(p - r, 0.0)
  z = jnp.sum(d, axis=-1, keepdims=True)
  return jnp.where(z > 0, d / jnp.where(z > 0, z, 1.0), p)


def accept_probability(p_x: jax.Array, r_x: jax.Array) -> jax.Array:
  """min(1, p(x) / r(x)) for a drafted token x (r(x) > 0 since x was drawn from r)."""
  return jnp.minimum(1.0, p_x / jnp.maximum(r_x, 1e-30))


def sample_accept(tree: DraftTree, target_probs: jax.Array, key: jax.Array, max_depth: int) -> Acceptance:
  """Lossless recursive rejection sampling over the tree (module docstring).

  Args:
    tree: the draft (probs None: deterministic one-hot proposals).  target_probs: [B, T, V] p after each node
      (`sampling_probs` of the target logits).  key: PRNG key.  max_depth: D.
  Returns:
    Acceptance with `next` drawn from the final residual / leaf distribution.
  """
  b, t, v = target_probs.shape
  rows = jnp.arange(b)
  k_u, k_next = jax.random.split(key)
  u = jax.random.uniform(k_u, (b, t))
  draft = tree.probs

  def visit(i, carry):
    cur, depth, path, p, q = carry
    x = tree.tokens[:, i]
    child = tree.parents[:, i] == cur
    onehot = jax.nn.one_hot(x, v, dtype=jnp.float32)
    if draft is None:
      r = onehot
    else:
      r = q / jnp.maximum(jnp.sum(q, axis=-1, keepdims=True), 1e-30)
    acc = u[:, i] < accept_probability(p[rows, x], r[rows, x])
    take, reject = child & acc, child & ~acc
    depth = jnp.where(take, depth + 1, depth)
    path = jnp.where(take[:, None] & (jnp.arange(max_depth + 1)[None] == depth[:, None]), i, path)
    p = jnp.where(take[:, None], target_probs[:, i], jnp.where(reject[:, None], residual(p, r), p))
    if draft is not None:
      q = jnp.where(take[:, None], draft[:, i], jnp.where(reject[:, None], q * (1.0 - onehot), q))
    return jnp.where(take, i, cur), depth, path, p, q

  zeros = jnp.zeros((b,), jnp.int32)
  q0 = jnp.zeros((b, 1), jnp.float32) if draft is None else draft[:, 0]
  init = (zeros, zeros, jnp.zeros((b, max_depth + 1), jnp.int32), target_probs[:, 0], q0)
  cur, depth, path, p, _ = jax.lax.fori_loop(1, t, visit, init)
  nxt = jax.random.categorical(k_next, jnp.log(p), axis=-1).astype(jnp.int32)
  return Acceptance(path, depth, nxt)
