"""Sequence packing with document boundaries carried as segment ids (document masking).

A packed row of length T holds several documents (or pieces of one). Per token it carries

  tokens       the ids                                   segment_ids  1, 2, ... per piece in the row; 0 = padding
  positions    0, 1, ... restarting at every piece       targets      the next token within the same piece
  loss_mask    1 where the target is trained (the document's own per-token mask, shifted; 0 at a piece's last
               token, since its next token belongs to another document, and 0 on padding)

With `split_docs=True` (concatenate-then-split) a document that does not fit the rest of a row fills it and its
remainder starts the next row (no padding except at the end of the stream); with `split_docs=False` it starts a
new row (the rest of the row is padding) and only documents longer than T are cut into T-sized pieces.
`PackIterDataset` is a grain IterDataset whose iterator state (parent state + the pending remainder) is JSON-able,
so a restored pipeline continues exactly where it stopped.
"""

from __future__ import annotations

from typing import Sequence

import grain
import numpy as np

from lcjax.errors import ConfigError, DataError

FIELDS = ("tokens", "targets", "loss_mask", "positions", "segment_ids")


def doc_arrays(doc: dict) -> tuple[np.ndarray, np.ndarray]:
  """(tokens [n] int32, per-token loss weights [n] float32) of a document dict (weights default to ones)."""
  tokens = np.asarray(doc["tokens"], np.int32)
  mask = np.ones(len(tokens), np.float32) if doc.get("loss_mask") is None else np.asarray(doc["loss_mask"],
                                                                                          np.float32)
  if mask.shape != tokens.shape:
    raise DataError(f"document loss_mask has shape {mask.shape}, tokens have {tokens.shape}")
  return tokens, mask


def pack_row(pieces: Sequence[tuple[np.ndarray, np.ndarray]], seq_len: int) -> dict:
  """One packed row from pieces that fit (total length <= seq_len).

  Args:
    pieces: (tokens [n_i], loss weights [n_i]) per piece; weight i says whether token i is trained as a target.
    seq_len: T.
  Returns:
    dict of FIELDS, each [T] (int32; loss_mask float32).
  """
  row = {k: np.zeros(seq_len, np.float32 if k == "loss_mask" else np.int32) for k in FIELDS}
  start = 0
  for seg, (tokens, mask) in enumerate(pieces, start=1):
    n = len(tokens)
    if start + n > seq_len:
      raise ConfigError(f"pieces of total length {start + n} do not fit seq_len={seq_len}")
    sl = slice(start, start + n)
    row["tokens"][sl], row["positions"][sl], row["segment_ids"][sl] = tokens, np.arange(n), seg
    row["targets"][start:start + n - 1] = tokens[1:]
    row["loss_mask"][start:start + n - 1] = mask[1:]
    start += n
  return row


def unpack_row(row: dict) -> list[np.ndarray]:
  """The pieces' tokens of a packed row, in order (inverse of `pack_row` on tokens)."""
  seg = row["segment_ids"]
  return [row["tokens"][seg == s] for s in np.unique(seg) if s > 0]


class _PackIterator(grain.DatasetIterator):
  """Pulls documents from the parent until a row is full. A document cut at a row end stays pending; the state
  records the parent's state before that document and the cut offset, so a restore re-reads it (small state)."""

  def __init__(self, parent: grain.DatasetIterator, seq_len: int, split_docs: bool):
    super().__init__(parent)
    self.seq_len, self.split_docs = seq_len, split_docs
    self.pending: tuple[np.ndarray, np.ndarray] | None = None
    self.pending_from: tuple[dict, int] | None = None  # (parent state before the pending doc, offset into it)

  def _pull(self) -> tuple[np.ndarray, np.ndarray]:
    """The next document: the pending remainder, or a fresh non-empty one from the parent."""
    if self.pending is not None:
      doc, self.pending = self.pending, None
      return doc
    while True:
      self._before = self._parent.get_state()
      doc = doc_arrays(next(self._parent))
      self._offset = 0
      if len(doc[0]):
        return doc

  def _hold(self, tokens, mask, cut: int) -> None:
    self.pending = (tokens[cut:], mask[cut:])
    self._offset += cut
    self.pending_from = (self._before, self._offset)

  def __next__(self) -> dict:
    pieces, free = [], self.seq_len
    while free > 0:
      try:
        tokens, mask = self._pull()
      except StopIteration:
        if not pieces:
          raise
        break
      self.pending_from = None
      if len(tokens) > free and (self.split_docs or not pieces):
        pieces.append((tokens[:free], mask[:free]))
        self._hold(tokens, mask, free)
        break
      if len(tokens) > free:
        self._hold(tokens, mask, 0)
        break
      pieces.append((tokens, mask))
      free -= len(tokens)
    return pack_row(pieces, self.seq_len)

  def get_state(self) -> dict:
    if self.pending_from is None:
      return {"parent": self._parent.get_state(), "offset": -1}
    return {"parent": self.pending_from[0], "offset": self.pending_from[1]}

  def set_state(self, state: dict) -> None:
    self._parent.set_state(state["parent"])
    self.pending = self.pending_from = None
    if state["offset"] >= 0:
      tokens, mask = self._pull()
      self._offset = state["offset"]
      self.pending = (tokens[self._offset:], mask[self._offset:])
      self.pending_from = (self._before, self._offset)


class PackIterDataset(grain.IterDataset):
  """Packs a stream of documents ({"tokens": [n], "loss_mask": [n] optional}) into rows of FIELDS [T].

  Args:
    parent: IterDataset of document dicts.  seq_len: T.  split_docs: concatenate-then-split (see module doc).
  """

  def __init__(self, parent: grain.IterDataset, seq_len: int, split_docs: bool = True):
    super().__init__(parent)
    if seq_len < 2:
      raise ConfigError(f"seq_len must be >= 2 for packing, got {seq_len}")
    self.seq_len, self.split_docs = seq_len, split_docs

  def __iter__(self) -> grain.DatasetIterator:
    return _PackIterator(self._parent.__iter__(), self.seq_len, self.split_docs)
