"""grain pipelines from a `DataConfig`: sources -> shuffle -> tokenize -> mixture -> augment -> pack -> batch.

  per source:  MapDataset.source(src).shuffle(seed).repeat().map(tokenize)    (deterministic, random access)
  mixture:     IterDataset.mix(sources, weights)                               (ratios by source)
  docs stage:  augmentations over document streams (e.g. untie_knots)
  packing:     PackIterDataset(seq_len) -> rows with segment ids and restarting positions
  rows stage:  augmentations over packed rows (e.g. e2llm scale / offset)
  batching:    .batch(B) -> dict of [B, T] arrays

The iterator's `get_state()` is a JSON-able dict and `set_state` restores it exactly (`lcjax.training` stores it in
each checkpoint). Tokenizers (registry `TOKENIZERS`): `bytes` (UTF-8 bytes + 4: PAD 0, BOS 1, EOS 2) and
`smollm2` (the bundled model's BPE). Augmentations register in `AUGMENTATIONS` with caps {"stage": docs|rows}.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import grain
import numpy as np

from lcjax.config import from_dict
from lcjax.data.packing import PackIterDataset
from lcjax.data.sources import open_source
from lcjax.data.synthetic import SyntheticSource
from lcjax.errors import ConfigError
from lcjax.registry import Registry


@dataclasses.dataclass(frozen=True)
class SourceConfig:
  """One data source of a mixture.

  Attributes:
    name: label (metrics, mixtures).  format: jsonl, arrayrecord, zarr, text (see `lcjax.data.sources`) or
      synthetic (`kv_retrieval`; options: length, vocab_size, num_pairs, num_queries, num_records).
    path: file or directory.  weight: mixture ratio (normalised over sources).
    text_field: field holding the text.  prompt_field, response_field: for SFT records: the prompt is not trained
      (loss mask 0), the response is.  max_tokens: documents are cut to this many tokens (0 = no limit).
    options: format-specific options.
  """

  name: str = "data"
  format: str = "jsonl"
  path: str = ""
  weight: float = 1.0
  text_field: str = "text"
  prompt_field: str = ""
  response_field: str = ""
  max_tokens: int = 0
  options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """A training data pipeline.

  Attributes:
    sources: the mixture.  tokenizer: name in TOKENIZERS.  seq_len: T of packed rows.  batch_size: B.
    seed: shuffling / mixing / augmentation seed.  shuffle: shuffle each source.  split_docs: packing mode (see
    `lcjax.data.packing`).  augment: names in AUGMENTATIONS, applied in order.  augment_options: per-name options.
  """

  sources: tuple[SourceConfig, ...] = ()
  tokenizer: str = "bytes"
  seq_len: int = 256
  batch_size: int = 8
  seed: int = 0
  shuffle: bool = True
  split_docs: bool = True
  augment: tuple[str, ...] = ()
  augment_options: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not self.sources:
      raise ConfigError("DataConfig.sources is empty; give at least one source")
    object.__setattr__(self, "sources", tuple(from_dict(SourceConfig, s, "data.sources.") for s in self.sources))
    for name in ("seq_len", "batch_size"):
      if getattr(self, name) < 1:
        raise ConfigError(f"DataConfig.{name} must be >= 1, got {getattr(self, name)}")
    if any(s.weight <= 0 for s in self.sources):
      raise ConfigError(f"source weights must be > 0, got {[s.weight for s in self.sources]}")


TOKENIZERS: Registry[Callable] = Registry("tokenizer")


class ByteTokenizer:
  """UTF-8 bytes shifted by 4 (PAD 0, BOS 1, EOS 2, 3 unused): V = 260."""

  vocab_size, bos_id, eos_ids = 260, 1, (2,)

  def encode(self, text: str) -> list[int]:
    """Token ids [n] of `text`."""
    return [b + 4 for b in text.encode("utf-8")]

  def decode(self, ids) -> str:
    """Text of ids (specials dropped)."""
    return bytes(i - 4 for i in ids if i >= 4).decode("utf-8", errors="replace")


TOKENIZERS.register("bytes", ByteTokenizer)


@TOKENIZERS.register("smollm2")
def _smollm2_tokenizer():
  """The bundled SmolLM2 BPE tokenizer (from the GGUF file, no download)."""
  from lcjax.checkpoint import gguf
  from lcjax.data.tokenizer import Tokenizer
  from lcjax.models.bundled import bundled_path

  path = bundled_path()
  return Tokenizer.from_tokenizer_data(gguf.tokenizer_data(gguf.read_gguf(path)), (2,), path)


def tokenize_record(record: dict, src: SourceConfig, tokenizer) -> dict:
  """A source record -> {"tokens": [n] int32, "loss_mask": [n] float32} (+ EOS for text; prompt masked for SFT)."""
  if "tokens" in record:
    out = {"tokens": np.asarray(record["tokens"], np.int32),
           "loss_mask": np.asarray(record.get("loss_mask", np.ones(len(record["tokens"]))), np.float32)}
  elif src.prompt_field:
    for f in (src.prompt_field, src.response_field):
      if f not in record:
        raise ConfigError(f"source {src.name!r}: record has no field {f!r}; fields: {sorted(record)}")
    prompt = tokenizer.encode(str(record[src.prompt_field]))
    response = tokenizer.encode(str(record[src.response_field])) + [tokenizer.eos_ids[0]]
    out = {"tokens": np.asarray([tokenizer.bos_id] + prompt + response, np.int32),
           "loss_mask": np.asarray([0.0] * (1 + len(prompt)) + [1.0] * len(response), np.float32)}
  else:
    if src.text_field not in record:
      raise ConfigError(f"source {src.name!r}: record has no field {src.text_field!r}; fields: {sorted(record)}")
    ids = [tokenizer.bos_id] + tokenizer.encode(str(record[src.text_field])) + [tokenizer.eos_ids[0]]
    out = {"tokens": np.asarray(ids, np.int32), "loss_mask": np.ones(len(ids), np.float32)}
  if src.max_tokens:
    out = {k: v[:src.max_tokens] for k, v in out.items()}
  return out


def _open(src: SourceConfig):
  if src.format == "synthetic":
    return SyntheticSource(**src.options)
  if src.options:
    raise ConfigError(f"source {src.name!r}: format {src.format!r} takes no options, got {sorted(src.options)}")
  return open_source(src.format, src.path)


def source_dataset(src: SourceConfig, tokenizer, seed: int, shuffle: bool = True) -> grain.MapDataset:
  """One source as an endless MapDataset of tokenized documents (shuffled per epoch by `seed`)."""
  ds = grain.MapDataset.source(_open(src))
  if shuffle:
    ds = ds.shuffle(seed=seed)
  return ds.repeat(None).map(lambda r: tokenize_record(r, src, tokenizer))


def document_stream(cfg: DataConfig, tokenizer=None) -> grain.IterDataset:
  """The mixture of the config's sources as an IterDataset of documents (before packing)."""
  tokenizer = tokenizer or TOKENIZERS.get(cfg.tokenizer)()
  read = grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)
  streams = [source_dataset(s, tokenizer, cfg.seed + 7919 * i, cfg.shuffle).to_iter_dataset(read)
             for i, s in enumerate(cfg.sources)]
  if len(streams) == 1:
    return streams[0]
  total = sum(s.weight for s in cfg.sources)
  return grain.IterDataset.mix(streams, [s.weight / total for s in cfg.sources])


# An augmentation maps (dataset, its options dict, seed, seq_len) -> dataset, at the stage in its caps.
AUGMENTATIONS: Registry[Callable[[grain.IterDataset, dict, int, int], grain.IterDataset]] = Registry(
    "data augmentation")


def _augment(ds: grain.IterDataset, cfg: DataConfig, stage: str) -> grain.IterDataset:
  for i, name in enumerate(cfg.augment):
    entry = AUGMENTATIONS.entry(name)
    if entry.caps["stage"] == stage:
      ds = entry.value(ds, dict(cfg.augment_options.get(name, {})), cfg.seed + 104729 * (i + 1), cfg.seq_len)
  return ds


def _stack(rows) -> dict[str, Any]:
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def build_pipeline(cfg: DataConfig, tokenizer=None) -> grain.IterDataset:
  """The full pipeline: batches of {tokens, targets, loss_mask, positions, segment_ids: [B, T]} (+ augmentation
  fields such as rope_scale [B])."""
  import lcjax.recipes  # noqa: F401  (registers the recipes' augmentations)

  unknown = [a for a in cfg.augment if a not in AUGMENTATIONS]
  if unknown:
    AUGMENTATIONS.entry(unknown[0])
  docs = _augment(document_stream(cfg, tokenizer), cfg, "docs")
  rows = _augment(PackIterDataset(docs, cfg.seq_len, cfg.split_docs), cfg, "rows")
  return rows.batch(cfg.batch_size, drop_remainder=True, batch_fn=_stack)
