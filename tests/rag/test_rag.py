"""lcjax.rag: document store, BM25 / dense retrieval, DRAG prompts and the IterDRAG controller's accounting."""

import numpy as np
import pytest

from lcjax.errors import ConfigError, DataError
from lcjax.rag import CORPORA, RETRIEVERS, DenseRetriever, Document, DocumentStore, answer, build_prompt
from lcjax.rag import closed_book_prompt, parse_strategy
from lcjax.rag.drag import FINAL, FOLLOW_UP, INTERMEDIATE, RagStrategy


@pytest.fixture(scope="module")
def facts():
  return CORPORA.get("facts")(seed=0)


@pytest.fixture(scope="module")
def bm25(facts):
  return RETRIEVERS.get("bm25")(facts.store)


def test_store_round_trip_and_bad_input(tmp_path):
  store = DocumentStore.from_texts(["alpha beta", "gamma"], titles=["a", "g"])
  store.save(str(tmp_path))
  assert DocumentStore.load(str(tmp_path)) == store
  with pytest.raises(DataError, match="empty corpus"):
    DocumentStore(())
  with pytest.raises(DataError, match="duplicate document id '1'"):
    DocumentStore((Document("1", "", "x"), Document("1", "", "y")))
  with pytest.raises(DataError, match="no document store"):
    DocumentStore.load(str(tmp_path / "missing"))
  assert Document("1", "t", "one two three").render(2) == "(Title: t) one two"


def test_fact_corpus_deterministic(facts):
  again = CORPORA.get("facts")(seed=0)
  assert again == facts and CORPORA.get("facts")(seed=1) != facts
  assert {q.hops for q in facts.questions} == {1, 2}
  demo_people = {d.question for d in facts.demos}
  assert not demo_people & {q.question for q in facts.questions}
  for q in facts.questions:  # every gold answer is stated in some document
    assert any(q.answers[0] in d.text for d in facts.store.documents)


def test_bm25_finds_the_entity_document(facts, bm25):
  born = [q for q in facts.questions if q.id.endswith("-born")]
  hits = bm25.retrieve([q.question for q in born], k=2)
  for q, h in zip(born, hits):
    person = q.question.removeprefix("In which city was ").removesuffix(" born?")
    assert facts.store[h[0].index].title == person and h[0].score >= h[1].score
  with pytest.raises(ConfigError, match="k=77 is larger than the corpus: 76"):
    bm25.retrieve(["x"], k=77)
  assert bm25.retrieve(["x"], k=0) == [[]]


def test_bm25_on_real_essays():
  essays = CORPORA.get("essays")()
  target = essays.store[123]
  query = " ".join(target.text.split()[10:30])
  assert RETRIEVERS.get("bm25")(essays.store).retrieve([query], k=1)[0][0].index == 123


class _BagOfWords:
  """A deterministic hashing encoder: any `Encoder` plugs into DenseRetriever."""

  name = "bow"

  def encode(self, texts):
    out = np.zeros((len(texts), 64), np.float32)
    for i, t in enumerate(texts):
      for w in t.lower().replace("?", " ").replace(".", " ").split():
        out[i, hash(w) % 64] += 1
    return out


def test_dense_retriever_with_any_encoder_and_cache(facts, tmp_path):
  r = DenseRetriever(facts.store, _BagOfWords(), cache_dir=str(tmp_path))
  assert (tmp_path / "embeddings.bow.npy").exists()
  q = facts.questions[0]
  hit = r.retrieve([q.question], 1)[0][0]
  assert q.question.split()[4] in facts.store[hit.index].text
  again = DenseRetriever(facts.store, _BagOfWords(), cache_dir=str(tmp_path))
  np.testing.assert_array_equal(again.embeddings, r.embeddings)


def test_mean_pool_encoder_ignores_padding():
  """Mean-pooled tiny-model states of a text are the same alone and batched next to a longer text."""
  import jax
  from flax import nnx

  from lcjax.models.llama import Llama
  from lcjax.rag.retriever import MeanPoolEncoder
  from tests.tiny import TINY

  class Tok:
    def encode(self, text):
      return [ord(c) % 90 + 3 for c in text]

  class Pre:
    cfg, tokenizer = TINY, Tok()
    graphdef, state = nnx.split(Llama(TINY, key=jax.random.PRNGKey(0)))

  enc = MeanPoolEncoder(Pre(), max_tokens=64, batch=2)
  alone = enc.encode(["short text"])
  both = enc.encode(["short text", "a much longer text that needs a wider bucket than the first"])
  assert both.shape == (2, TINY.dim)
  np.testing.assert_allclose(alone[0], both[0], atol=1e-5)


def test_parse_strategy():
  assert parse_strategy("drag:k=8,m=2") == RagStrategy("drag", 8, 2, 1)
  assert parse_strategy("iterdrag:n=3").theta == (4, 1, 3)
  assert parse_strategy("closed").theta == (0, 0, 1)
  for bad, msg in [("rag:k=1", "unknown RAG strategy"), ("drag:z=1", "unknown RAG option 'z'"),
                   ("drag:k=x", "not an integer"), ("iterdrag:n=0", "n >= 1")]:
    with pytest.raises(ConfigError, match=msg):
      parse_strategy(bad)


def test_drag_prompt_order_closed_book_and_demos(facts, bm25):
  q = facts.questions[0]
  prompt, hits = build_prompt(facts, bm25, q, parse_strategy("drag:k=3,m=0"))
  positions = [prompt.index(facts.store[h.index].text) for h in hits]
  assert positions == sorted(positions, reverse=True)  # rank 1 is last, next to the question
  assert prompt.endswith(f"Question: {q.question}\nAnswer:")
  assert build_prompt(facts, bm25, q, parse_strategy("closed"))[0] == closed_book_prompt(q)
  for q in facts.questions:
    prompt, _ = build_prompt(facts, bm25, q, parse_strategy("drag:k=1,m=3"))
    assert prompt.count(q.question) == 1  # only the test block asks it
  with pytest.raises(ConfigError, match="demo pool has 36"):
    build_prompt(facts, bm25, q, parse_strategy("drag:k=1,m=37"))


def test_drag_truncation_drops_demos_then_low_ranked_documents(facts, bm25):
  count = lambda text: len(text.split())  # noqa: E731
  q = facts.questions[3]
  full, hits = build_prompt(facts, bm25, q, parse_strategy("drag:k=4,m=2"))
  limit = count(full) - 5
  cut, cut_hits = build_prompt(facts, bm25, q, RagStrategy("drag", 4, 2, max_prompt_tokens=limit), count)
  assert count(cut) <= limit and cut_hits == hits and cut.count("Question:") == 2  # one demo dropped
  tiny, tiny_hits = build_prompt(facts, bm25, q, RagStrategy("drag", 4, 2, max_prompt_tokens=40), count)
  assert tiny.count("Question:") == 1 and tiny_hits == hits[:len(tiny_hits)] and len(tiny_hits) < 4


class Scripted:
  """A scripted CompletionLM: returns its outputs in order and records every prompt (word-level tokens)."""

  def __init__(self, outputs):
    self.outputs, self.prompts = list(outputs), []

  def encode(self, text):
    return [hash(w) % 1000 for w in text.split()]

  def complete(self, prompt, max_new_tokens, stop):
    self.prompts.append((prompt, tuple(stop)))
    return self.outputs.pop(0)


def test_iterdrag_three_follow_ups_four_calls(facts, bm25):
  q = next(q for q in facts.questions if q.hops == 2)
  lm = Scripted([" Follow up: who A\n", " a1\nFollow up: who B\n", " b1\nFollow up: who C\n",
                 " c1\nSo the final answer is: Zed\n"])
  res = answer(lm, bm25, facts, q, parse_strategy("iterdrag:k=2,m=1,n=5"))
  assert res.calls == 4 and res.prediction == "Zed" and not res.forced
  assert res.follow_ups == ["who A", "who B", "who C"]
  assert res.prompt_lengths == [len(lm.encode(p)) for p, _ in lm.prompts]
  assert res.effective_length == sum(len(p.split()) for p, _ in lm.prompts)
  assert len(res.documents) == len(set(res.documents)) == 2 + 3 * 2  # each sub-query retrieved 2 new documents
  second = lm.prompts[1][0]
  assert second.startswith(lm.prompts[0][0]) and second.endswith(INTERMEDIATE)
  assert lm.prompts[3][0].count(FOLLOW_UP) == 3 + 2  # 3 here + the demonstration's 2
  assert res.reusable_tokens == sum(len(p.split()) for p, _ in lm.prompts[:3])  # each prompt extends the last


def test_iterdrag_cap_forces_the_final_answer(facts, bm25):
  q = next(q for q in facts.questions if q.hops == 2)
  lm = Scripted([" Follow up: one\n", " x\nFollow up: two\n", " y\n", " Forced\n"])
  res = answer(lm, bm25, facts, q, parse_strategy("iterdrag:k=1,m=0,n=3"))
  assert res.calls == 4 and res.forced and res.prediction == "Forced" and res.follow_ups == ["one", "two"]
  assert lm.prompts[2][1] == ("\n",) and lm.prompts[3][0].endswith(f"{INTERMEDIATE} y\n{FINAL}")
  lm1 = Scripted([" Alone\n"])
  res1 = answer(lm1, bm25, facts, q, parse_strategy("iterdrag:k=1,m=0,n=1"))
  assert res1.calls == 1 and res1.forced and lm1.prompts[0][0].endswith(f"{q.question}\n{FINAL}")


def test_loogle_corpus_from_official_format():
  import os

  fixtures = os.path.join(os.path.dirname(__file__), "fixtures")
  c = CORPORA.get("loogle")(data_dir=fixtures, words_per_passage=20)
  assert [d.id for d in c.store.documents] == ["0-0", "0-1", "0-2", "0-3", "1-0"]
  assert [q.question for q in c.questions] == ["Who built the harbour of Velmora?",
                                                "What does the quarry of Tesk produce?"]
  assert len(c.demos) == 2 and c.questions[0].answers == ("The guild of rope makers.",)
  with pytest.raises(DataError, match="shortdep_qa.jsonl not found"):
    CORPORA.get("loogle")(data_dir=str(fixtures) + "/nope")


def test_allocation_report_on_measured_rows():
  from lcjax.rag.experiment import allocation_report

  rows = []
  for k in (0, 1, 2, 4):
    for m in (0, 1, 2):
      acc = 100 * min(0.9, 0.05 + 0.15 * np.log1p(k) + 0.05 * m)
      rows.append({"kind": "drag", "strategy": f"drag:k={k},m={m}", "k": k, "m": m, "n": 1, "acc": acc,
                   "effective_length": 50 + 60 * k * (m + 1) + 20 * m})
  report = allocation_report(rows)
  assert report["info"][0] == pytest.approx(0.15 * np.log(2)) and report["info"][1] == pytest.approx(0.05)
  assert 0 < report["r2"] <= 1 and len(report["budgets"]) >= 3
  last = report["budgets"][-1]  # the whole grid fits the largest budget: the observed best is the global best
  assert last["observed_acc"] == max(r["acc"] for r in rows) / 100
