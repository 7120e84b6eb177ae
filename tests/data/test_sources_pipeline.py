"""Sources (jsonl, arrayrecord, zarr token store, text dir), tokenization with SFT loss masks, mixtures by ratio,
deterministic shuffling, exact iterator restore, and clear errors for missing / empty data and unknown keys."""

import json

import numpy as np
import pytest

from lcjax.config import from_dict
from lcjax.data.pipeline import ByteTokenizer, DataConfig, SourceConfig, build_pipeline, tokenize_record
from lcjax.data.sources import ArrayRecordSource, JsonlSource, TokenStore, write_array_record, write_token_store
from lcjax.data.synthetic import kv_retrieval
from lcjax.errors import ConfigError, DataError, UnknownNameError

RECORDS = [{"text": f"document number {i} " * (i + 1)} for i in range(6)]


@pytest.fixture()
def jsonl(tmp_path):
  path = tmp_path / "docs.jsonl"
  path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n\n")
  return str(path)


def test_jsonl_arrayrecord_and_token_store_roundtrip(tmp_path, jsonl):
  src = JsonlSource(jsonl)
  assert len(src) == 6 and [src[i] for i in range(6)] == RECORDS
  ar = str(tmp_path / "docs.arrayrecord")
  write_array_record(ar, RECORDS)
  arsrc = ArrayRecordSource(ar)
  assert len(arsrc) == 6 and [arsrc[i] for i in range(6)] == RECORDS
  tok = ByteTokenizer()
  docs = [np.asarray(tok.encode(r["text"]), np.int32) for r in RECORDS]
  write_token_store(str(tmp_path / "store"), docs, chunk=7)
  store = TokenStore(str(tmp_path / "store"))
  assert len(store) == 6
  for i in (5, 0, 3):
    np.testing.assert_array_equal(store[i]["tokens"], docs[i])
  assert tok.decode(store[2]["tokens"]) == RECORDS[2]["text"]


def test_missing_and_empty_data_raise(tmp_path):
  with pytest.raises(DataError, match="not found: .*nope.jsonl"):
    JsonlSource(str(tmp_path / "nope.jsonl"))
  empty = tmp_path / "empty.jsonl"
  empty.write_text("\n")
  with pytest.raises(DataError, match="empty dataset"):
    JsonlSource(str(empty))
  with pytest.raises(DataError, match="empty dataset"):
    write_token_store(str(tmp_path / "s"), [])
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"text": 1}\n{oops\n')
  with pytest.raises(DataError, match="record 1 is not valid JSON"):
    JsonlSource(str(bad))[1]
  with pytest.raises(ConfigError, match="sources is empty"):
    DataConfig(sources=())
  with pytest.raises(ConfigError, match="unknown key.*data.sources.colour"):
    DataConfig(sources=[{"format": "jsonl", "colour": "red"}])
  with pytest.raises(UnknownNameError, match="unknown data source format 'csv'"):
    next(iter(build_pipeline(DataConfig(sources=[{"format": "csv", "path": str(bad)}]))))


def test_sft_record_masks_the_prompt():
  src = SourceConfig(prompt_field="q", response_field="a")
  doc = tokenize_record({"q": "2+2?", "a": "4"}, src, ByteTokenizer())
  tok = ByteTokenizer()
  assert doc["tokens"].tolist() == [1] + tok.encode("2+2?") + tok.encode("4") + [2]
  assert doc["loss_mask"].tolist() == [0.0] * 5 + [1.0, 1.0]
  with pytest.raises(ConfigError, match="no field 'a'"):
    tokenize_record({"q": "x"}, src, ByteTokenizer())


def _cfg(jsonl, **kw):
  sources = [{"name": "a", "format": "jsonl", "path": jsonl, "weight": 3.0},
             {"name": "kv", "format": "synthetic", "weight": 1.0,
              "options": {"length": 40, "vocab_size": 260, "num_pairs": 2}}]
  return from_dict(DataConfig, {"sources": sources, "seq_len": 40, "batch_size": 2, "split_docs": False, **kw})


def test_mixture_ratio_and_deterministic_shuffle(jsonl):
  rows = [r for i, b in zip(range(100), build_pipeline(_cfg(jsonl))) for r in b["tokens"]]
  # Synthetic rows are exactly 40 tokens starting with BOS and ending in a query answer; text rows are not.
  synthetic = sum(int(r[-3] == 2) for r in rows)  # the QUERY id sits 3 tokens before a synthetic row's end
  assert 0.15 < synthetic / len(rows) < 0.40  # 1/4 of documents are synthetic (each fills a row)
  a = next(iter(build_pipeline(_cfg(jsonl))))
  b = next(iter(build_pipeline(_cfg(jsonl))))
  c = next(iter(build_pipeline(_cfg(jsonl, seed=5))))
  np.testing.assert_array_equal(a["tokens"], b["tokens"])
  assert not np.array_equal(a["tokens"], c["tokens"])


def test_pipeline_state_restores_exactly(jsonl):
  it = iter(build_pipeline(_cfg(jsonl, split_docs=True)))
  for _ in range(3):
    next(it)
  state = json.loads(json.dumps(it.get_state()))  # JSON-able, as stored in checkpoints
  want = [next(it) for _ in range(4)]
  again = iter(build_pipeline(_cfg(jsonl, split_docs=True)))
  again.set_state(state)
  for w in want:
    g = next(again)
    assert all(np.array_equal(g[k], w[k]) for k in w)


def test_kv_retrieval_sample():
  s = kv_retrieval(7, 64, 64, num_pairs=4)
  assert s["tokens"].shape == (64,) and s["tokens"][0] == 1
  np.testing.assert_array_equal(s["tokens"][s["answer_positions"]], s["answers"])
  np.testing.assert_array_equal(np.nonzero(s["loss_mask"])[0], s["answer_positions"])
  for p, v in zip(s["answer_positions"], s["answers"]):
    key = s["tokens"][p - 1]
    where = np.nonzero(s["tokens"][:p - 2] == key)[0]
    assert len(where) == 1 and s["tokens"][where[0] + 1] == v  # the key's one pair in the context holds v
  np.testing.assert_array_equal(kv_retrieval(7, 64, 64, num_pairs=4)["tokens"], s["tokens"])
  with pytest.raises(ConfigError, match="too short"):
    kv_retrieval(0, 10, 64, num_pairs=4)


def test_kv_retrieval_fused_pairs_decode_to_their_key_and_value():
  s = kv_retrieval(3, 96, 256, num_pairs=4, num_keys=4, num_values=8, fused=True, extra_queries=5)
  keys, values = s["tokens"][s["answer_positions"] - 1], s["answers"]
  assert len(values) == 9 and set(keys[:4].tolist()) == set(range(4, 8))  # 4 distinct marker keys first
  pair_base = 67 + 8  # after the 8 values that follow the key range (vocab 256: keys from id 4, values from 67)
  for k, v in zip(keys, values):
    fused_id = pair_base + (k - 4) * 8 + (v - 67)
    assert np.sum(s["tokens"][:96 - 27] == fused_id) == 1  # the context holds exactly one token for the pair
