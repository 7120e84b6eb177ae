"""A document store on disk: one JSONL of documents (+ optional dense embeddings per encoder as .npy).

  store = DocumentStore.from_texts(["...", "..."], titles=["a", "b"])
  store.save("results/rag/facts")                  # documents.jsonl
  store = DocumentStore.load("results/rag/facts")
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Sequence

import numpy as np

from lcjax.errors import DataError


@dataclasses.dataclass(frozen=True)
class Document:
  """One retrievable text: a unique id, a title and the text."""

  id: str
  title: str
  text: str

  def render(self, max_words: int | None = None) -> str:
    """"(Title: t) text" with the text cut to its first `max_words` words (the DRAG document truncation)."""
    text = self.text
    if max_words is not None:
      words = text.split()
      if len(words) > max_words:
        text = " ".join(words[:max_words])
    return f"(Title: {self.title}) {text}" if self.title else text


@dataclasses.dataclass(frozen=True)
class DocumentStore:
  """An ordered collection of documents with unique ids.

  Raises (at construction):
    DataError: no documents, or duplicate ids.
  """

  documents: tuple[Document, ...]

  def __post_init__(self):
    if not self.documents:
      raise DataError("empty corpus: a document store needs at least one document")
    ids = [d.id for d in self.documents]
    if len(set(ids)) != len(ids):
      dup = next(i for i in ids if ids.count(i) > 1)
      raise DataError(f"duplicate document id {dup!r} in the corpus")

  def __len__(self) -> int:
    return len(self.documents)

  def __getitem__(self, index: int) -> Document:
    return self.documents[index]

  @property
  def texts(self) -> list[str]:
    """Title + text of every document (what retrievers index)."""
    return [f"{d.title} {d.text}".strip() for d in self.documents]

  @classmethod
  def from_texts(cls, texts: Sequence[str], titles: Sequence[str] | None = None) -> "DocumentStore":
    """Documents with ids "0", "1", ... (titles default to empty)."""
    titles = list(titles) if titles is not None else [""] * len(texts)
    return cls(tuple(Document(str(i), t, x) for i, (t, x) in enumerate(zip(titles, texts))))

  def save(self, directory: str) -> str:
    """Writes `directory/documents.jsonl`; returns its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "documents.jsonl")
    with open(path, "w", encoding="utf-8") as f:
      for d in self.documents:
        f.write(json.dumps(dataclasses.asdict(d), ensure_ascii=False) + "\n")
    return path

  @classmethod
  def load(cls, directory: str) -> "DocumentStore":
    """Reads `directory/documents.jsonl`.

    Raises:
      DataError: missing file or a malformed line (named with its line number).
    """
    path = os.path.join(directory, "documents.jsonl")
    if not os.path.isfile(path):
      raise DataError(f"no document store at {directory!r} (expected {path})")
    docs = []
    with open(path, encoding="utf-8") as f:
      for n, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          r = json.loads(line)
          docs.append(Document(str(r["id"]), r.get("title", ""), r["text"]))
        except (ValueError, KeyError) as e:
          raise DataError(f"{path}:{n}: malformed document ({e})") from None
    return cls(tuple(docs))

  def save_embeddings(self, directory: str, encoder: str, embeddings: np.ndarray) -> str:
    """Caches [N, D] embeddings of `encoder` next to the documents."""
    path = os.path.join(directory, f"embeddings.{_safe(encoder)}.npy")
    np.save(path, np.asarray(embeddings, np.float32))
    return path

  def load_embeddings(self, directory: str, encoder: str) -> np.ndarray | None:
    """Cached embeddings of `encoder` if present and matching the store's size, else None."""
    path = os.path.join(directory, f"embeddings.{_safe(encoder)}.npy")
    if not os.path.isfile(path):
      return None
    emb = np.load(path)
    return emb if len(emb) == len(self) else None


def _safe(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def chunk_words(text: str, words_per_chunk: int) -> list[str]:
  """Consecutive chunks of `words_per_chunk` whitespace words (the last one may be shorter)."""
  words = text.split()
  return [" ".join(words[i:i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]
