"""Untie the Knots (UtK; Tian et al. 2024): chunk documents, shuffle the chunks across documents into one knotted
sequence, and train the model to untie it by tracing each document's chunks back in order.

Knot: n documents d_1..d_n are cut into chunks (lengths ~ Uniform[min_chunk_len, max_chunk_len], at most
max_slots chunks in all); the chunks are shuffled across documents and written as

  [CHUNK] c_{s_1} [CHUNK] c_{s_2} ... [CHUNK] c_{s_m}                         (slot j holds chunk s_j)

Untie (the tracing objective): after the knot, for every document in order of its first chunk's slot,

  [TRACE] <slot of its chunk 1> <slot of its chunk 2> ... <slot of its last chunk>

with slot j written as token `slot_base + j`. Content tokens keep the LM loss; a chunk marker and the token after
it (whose left context belongs to another document) are not trained; trace tokens are trained, so the model learns
to find which chunks belong together and in what order. The recorded `order` untie()s the knot exactly.
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np

from lcjax.config import from_dict
from lcjax.data.packing import doc_arrays
from lcjax.data.pipeline import AUGMENTATIONS
from lcjax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class KnotConfig:
  """Attributes: docs_per_knot n; chunk length range; special ids chunk_token, trace_token; slot ids
  slot_base .. slot_base + max_slots - 1 (reserve them in the vocabulary); trace: append the untying objective."""

  chunk_token: int
  trace_token: int
  slot_base: int
  max_slots: int = 64
  docs_per_knot: int = 4
  min_chunk_len: int = 32
  max_chunk_len: int = 256
  trace: bool = True

  def __post_init__(self):
    if not 1 <= self.min_chunk_len <= self.max_chunk_len:
      raise ConfigError(f"need 1 <= min_chunk_len <= max_chunk_len, got {self.min_chunk_len}, {self.max_chunk_len}")
    if self.docs_per_knot < 1 or self.max_slots < self.docs_per_knot:
      raise ConfigError(f"need docs_per_knot >= 1 and max_slots >= docs_per_knot, got {self.docs_per_knot}, "
                        f"{self.max_slots}")


def _cuts(n: int, cfg: KnotConfig, rng: np.random.Generator) -> list[int]:
  """Chunk boundaries [0, ..., n] of one document."""
  cuts = [0]
  while cuts[-1] < n:
    cuts.append(min(n, cuts[-1] + int(rng.integers(cfg.min_chunk_len, cfg.max_chunk_len + 1))))
  return cuts


def knot(docs: list[dict], cfg: KnotConfig, rng: np.random.Generator) -> dict:
  """Knots documents into one sequence (and appends the trace when cfg.trace).

  Args:
    docs: document dicts ({"tokens": [n_i], "loss_mask": [n_i] optional}).
  Returns:
    {"tokens": [m] int32, "loss_mask": [m] float32, "order": [num_chunks, 4] int32 rows (doc, chunk, start, end)
     per slot: slot j holds tokens[start:end] = chunk `chunk` of document `doc`}.
  """
  arrays = [doc_arrays(d) for d in docs]
  chunks = []
  for i, (tokens, _) in enumerate(arrays):
    cuts = _cuts(len(tokens), cfg, rng)
    chunks += [(i, k, lo, hi) for k, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:]))]
  if len(chunks) > cfg.max_slots:
    raise ConfigError(f"knot has {len(chunks)} chunks, more than max_slots={cfg.max_slots}; raise max_slots or "
                      f"min_chunk_len, or lower docs_per_knot")
  toks, mask, order, pos = [], [], [], 0
  for j in rng.permutation(len(chunks)):
    i, k, lo, hi = chunks[j]
    content_mask = arrays[i][1][lo:hi].copy()
    content_mask[0] = 0.0  # its left context is another document's chunk
    toks += [np.asarray([cfg.chunk_token], np.int32), arrays[i][0][lo:hi]]
    mask += [np.zeros(1, np.float32), content_mask]
    order.append((i, k, pos + 1, pos + 1 + hi - lo))
    pos += 1 + hi - lo
  order = np.asarray(order, np.int32).reshape(-1, 4)
  if cfg.trace:
    trace = trace_tokens(order, cfg)
    toks.append(trace)
    mask.append(np.concatenate([[0.0], np.ones(len(trace) - 1)]).astype(np.float32))
  return {"tokens": np.concatenate(toks).astype(np.int32), "loss_mask": np.concatenate(mask).astype(np.float32),
          "order": order}


def trace_tokens(order: np.ndarray, cfg: KnotConfig) -> np.ndarray:
  """The untying target: per document (by its first slot) [TRACE] and its chunks' slot ids in chunk order."""
  out = []
  docs = sorted(set(order[:, 0].tolist()), key=lambda d: int(np.min(np.nonzero(order[:, 0] == d)[0])))
  for d in docs:
    slots = np.nonzero(order[:, 0] == d)[0]
    slots = slots[np.argsort(order[slots, 1])]
    out += [cfg.trace_token] + [cfg.slot_base + int(s) for s in slots]
  return np.asarray(out, np.int32)


def untie(tokens: np.ndarray, order: np.ndarray, num_docs: int) -> list[np.ndarray]:
  """Reconstructs the documents of a knotted sequence from its recorded order ([num_chunks, 4]).

  Returns:
    num_docs arrays: document i = its chunks concatenated in chunk order.
  """
  docs = []
  for d in range(num_docs):
    rows = order[order[:, 0] == d]
    rows = rows[np.argsort(rows[:, 1])]
    docs.append(np.concatenate([tokens[lo:hi] for _, _, lo, hi in rows] or [np.zeros(0, np.int32)]))
  return docs


def untie_from_trace(tokens: np.ndarray, cfg: KnotConfig) -> list[np.ndarray]:
  """Reconstructs the documents from the knotted sequence's own trace (what the model learns to produce)."""
  starts = np.nonzero(tokens == cfg.chunk_token)[0]
  first_trace = int(np.nonzero(tokens == cfg.trace_token)[0][0])
  bounds = list(starts) + [first_trace]
  chunks = [tokens[bounds[j] + 1:bounds[j + 1]] for j in range(len(starts))]
  docs, current = [], None
  for t in tokens[first_trace:]:
    if t == cfg.trace_token:
      current = []
      docs.append(current)
    else:
      current.append(chunks[int(t) - cfg.slot_base])
  return [np.concatenate(c) for c in docs]


@AUGMENTATIONS.register("untie_knots", caps={"stage": "docs"})
def untie_knots_augmentation(ds: grain.IterDataset, options: dict, seed: int, seq_len: int) -> grain.IterDataset:
  """grain stage: groups docs_per_knot documents and knots them (options: KnotConfig fields)."""
  cfg = from_dict(KnotConfig, options, "augment_options.untie_knots.")
  grouped = ds.batch(cfg.docs_per_knot, batch_fn=list)
  return grouped.random_map(lambda docs, rng: knot(docs, cfg, rng), seed=seed)
