"""Retrievers over a `DocumentStore`: one interface, BM25 (`bm25s`) and dense retrieval with any text encoder.

  retriever = RETRIEVERS.get("bm25")(store)                       # or "dense" with encoder="smollm2-mean"
  hits = retriever.retrieve(["Where was Varnel Oskab born?"], k=4)  # [[Hit(index, id, score), ...]]

A dense encoder is anything with `name` and `encode(texts) -> [N, D]` float array; register a factory
`(**options) -> Encoder` in `ENCODERS` (the default mean-pools SmolLM2's final hidden states; another issue adds an
M2-BERT encoder the same way). Embeddings are L2-normalised and scored by inner product (cosine similarity).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Protocol, Sequence

import numpy as np

from lcjax.errors import ConfigError
from lcjax.rag.store import DocumentStore
from lcjax.registry import Registry

ENCODERS: Registry[Callable[..., "Encoder"]] = Registry("text encoder")
RETRIEVERS: Registry[Callable[..., "Retriever"]] = Registry("retriever")


class Encoder(Protocol):
  """Texts -> embeddings [N, D] (float32)."""

  name: str

  def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class Hit:
  """One retrieved document: its index in the store, its id and the retrieval score."""

  index: int
  id: str
  score: float


class Retriever:
  """Base class: subclasses implement `scores(queries) -> [Q, N]`; `retrieve` does the top-k."""

  def __init__(self, store: DocumentStore):
    self.store = store

  def scores(self, queries: Sequence[str]) -> np.ndarray:
    raise NotImplementedError

  def retrieve(self, queries: Sequence[str], k: int, exclude: Sequence[set] | None = None) -> list[list[Hit]]:
    """Top-`k` documents per query, best first (ties: lower store index first).

    Args:
      queries: Q query strings.  k: documents per query (0 -> none).
      exclude: optional per-query sets of store indices to skip (IterDRAG: documents already in the context).
    Raises:
      ConfigError: k < 0 or k larger than the documents available to a query.
    """
    if k < 0:
      raise ConfigError(f"k must be >= 0, got {k}")
    exclude = exclude or [set()] * len(queries)
    available = len(self.store) - max((len(e) for e in exclude), default=0)
    if k > available:
      raise ConfigError(f"k={k} is larger than the corpus: {available} documents available "
                        f"({len(self.store)} in the store)")
    if k == 0:
      return [[] for _ in queries]
    scores = np.asarray(self.scores(queries), np.float64)
    out = []
    for q_scores, skip in zip(scores, exclude):
      q_scores = q_scores.copy()
      q_scores[list(skip)] = -np.inf
      order = np.lexsort((np.arange(len(q_scores)), -q_scores))[:k]
      out.append([Hit(int(i), self.store[int(i)].id, float(q_scores[i])) for i in order])
    return out


_WORD = re.compile(r"[a-z0-9]+")


def _tokens(text: str, stopwords: frozenset) -> list[str]:
  return [w for w in _WORD.findall(text.lower()) if w not in stopwords]


@RETRIEVERS.register("bm25", doc="BM25 (bm25s, Lucene variant, k1=1.5, b=0.75) over lower-cased word tokens")
class BM25Retriever(Retriever):
  """BM25 scores from `bm25s` (lucene method; stopwords of bm25s' English list removed)."""

  def __init__(self, store: DocumentStore, k1: float = 1.5, b: float = 0.75):
    super().__init__(store)
    import bm25s
    from bm25s.stopwords import STOPWORDS_EN

    self._stop = frozenset(STOPWORDS_EN)
    self._bm25 = bm25s.BM25(k1=k1, b=b)
    corpus = [_tokens(t, self._stop) or ["<empty>"] for t in store.texts]
    self._bm25.index(corpus, show_progress=False)

  def scores(self, queries: Sequence[str]) -> np.ndarray:
    return np.stack([self._bm25.get_scores(_tokens(q, self._stop)) for q in queries])


@RETRIEVERS.register("dense", doc="dense retrieval: cosine similarity of encoder embeddings (default smollm2-mean)")
class DenseRetriever(Retriever):
  """Inner product of L2-normalised embeddings.

  Args:
    store: the documents.  encoder: an `Encoder` or a name in `ENCODERS` (built with `encoder_options`).
    cache_dir: if set, document embeddings are cached there per encoder name (see `DocumentStore.save_embeddings`).
  """

  def __init__(self, store: DocumentStore, encoder: "Encoder | str" = "smollm2-mean", cache_dir: str | None = None,
               **encoder_options):
    super().__init__(store)
    self.encoder = ENCODERS.get(encoder)(**encoder_options) if isinstance(encoder, str) else encoder
    emb = store.load_embeddings(cache_dir, self.encoder.name) if cache_dir else None
    if emb is None:
      emb = self.encoder.encode(store.texts)
      if cache_dir:
        store.save_embeddings(cache_dir, self.encoder.name, emb)
    self.embeddings = normalise(emb)

  def scores(self, queries: Sequence[str]) -> np.ndarray:
    return normalise(self.encoder.encode(list(queries))) @ self.embeddings.T


def normalise(x: np.ndarray) -> np.ndarray:
  """Rows scaled to unit L2 norm (zero rows stay zero)."""
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@ENCODERS.register("smollm2-mean", doc="mean-pooled final hidden states of a causal LM (default SmolLM2-135M)")
class MeanPoolEncoder:
  """Mean over the (non-pad) tokens of a decoder's final normalised hidden states.

  Args:
    pretrained: a loaded model (`lcjax.checkpoint.load_pretrained`); default the bundled SmolLM2-135M.
    max_tokens: texts are cut to their first `max_tokens` tokens.  batch: rows per jitted call (padded).
  """

  def __init__(self, pretrained=None, max_tokens: int = 256, batch: int = 8):
    if pretrained is None:
      from lcjax.checkpoint import load_pretrained

      pretrained = load_pretrained("smollm2-135m")
    self.pretrained, self.max_tokens, self.batch = pretrained, max_tokens, batch
    self.name = f"mean-{pretrained.cfg.num_layers}x{pretrained.cfg.dim}-{max_tokens}"
    self._fn = None

  def _pooled(self, state, tokens, lengths):
    """Mean of h over each row's first `lengths` tokens: [B, T] -> [B, D] fp32."""
    import jax.numpy as jnp
    from flax import nnx

    h, _ = nnx.merge(self.pretrained.graphdef, state).hidden(tokens)
    mask = (jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]).astype(jnp.float32)
    return (h.astype(jnp.float32) * mask[..., None]).sum(1) / jnp.maximum(lengths, 1)[:, None]

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """[N, D] mean-pooled embeddings (rows padded to a power-of-two length bucket, one compile per bucket)."""
    import jax
    import jax.numpy as jnp

    if self._fn is None:
      self._fn = jax.jit(self._pooled)
    ids = [self.pretrained.tokenizer.encode(t)[:self.max_tokens] or [0] for t in texts]
    out = []
    for start in range(0, len(ids), self.batch):
      chunk = ids[start:start + self.batch]
      width = 1 << max(4, (max(map(len, chunk)) - 1).bit_length())
      tokens = np.zeros((self.batch, width), np.int32)
      lengths = np.zeros((self.batch,), np.int32)
      for i, row in enumerate(chunk):
        tokens[i, :len(row)], lengths[i] = row, len(row)
      pooled = self._fn(self.pretrained.state, jnp.asarray(tokens), jnp.asarray(lengths))
      out.append(np.asarray(pooled, np.float32)[:len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, self.pretrained.cfg.dim), np.float32)
