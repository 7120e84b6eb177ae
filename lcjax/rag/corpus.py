"""RAG corpora: a document store plus questions with gold answers and a separate pool of demonstration questions.

  corpus = CORPORA.get("facts")(seed=0)          # deterministic synthetic fact corpus (invented entities)
  corpus = CORPORA.get("loogle")(data_dir=...)   # LooGLE short-dependency QA: documents chunked into passages
  corpus = CORPORA.get("essays")()               # the bundled essays as passages (retrieval only, no questions)

The synthetic corpus is about entities that exist nowhere else (names built from invented syllables), so a model
can only answer from retrieved documents. Single-hop questions ask a person's birth city or employer; multi-hop
questions ask where the person's employer is headquartered and carry their gold decomposition (sub-questions and
intermediate answers) for IterDRAG demonstrations. Demonstration questions are about other people than the test
questions, so a demonstration never contains a test question.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from lcjax.errors import DataError
from lcjax.rag.store import Document, DocumentStore, chunk_words
from lcjax.registry import Registry


@dataclasses.dataclass(frozen=True)
class Question:
  """A question with its gold answers; multi-hop questions carry sub-questions and intermediate answers."""

  id: str
  question: str
  answers: tuple[str, ...]
  hops: int = 1
  sub_questions: tuple[str, ...] = ()
  sub_answers: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RagCorpus:
  """Documents, test questions and demonstration questions (disjoint from the test questions)."""

  name: str
  store: DocumentStore
  questions: tuple[Question, ...]
  demos: tuple[Question, ...]


CORPORA: Registry = Registry("RAG corpus")

_ONSETS = ["br", "dr", "v", "k", "th", "z", "qu", "m", "st", "gl", "f", "n", "tr", "h", "l", "sk"]
_NUCLEI = ["a", "e", "i", "o", "u", "ae", "io", "ou"]
_CODAS = ["n", "l", "r", "x", "sk", "nd", "m", "th", "v", "rn"]
_PROFESSIONS = ["baker", "surveyor", "violinist", "chemist", "glassblower", "archivist", "pilot", "weaver"]
_INDUSTRIES = ["shipping", "textile", "software", "mining", "publishing", "brewing", "optics", "railway"]
_HOBBIES = ["chess", "rowing", "pottery", "birdwatching", "fencing", "gardening", "astronomy", "sailing"]
_CITY_SUFFIX = ["mere", "ford", "holm", "gate", "wick", "stead"]
_COMPANY_SUFFIX = ["Works", "Holdings", "Industries", "Company", "Group", "Guild"]


def _word(rng: np.random.Generator, syllables: int) -> str:
  parts = [_ONSETS[rng.integers(len(_ONSETS))] + _NUCLEI[rng.integers(len(_NUCLEI))] for _ in range(syllables)]
  return ("".join(parts) + _CODAS[rng.integers(len(_CODAS))]).capitalize()


def _article(word: str) -> str:
  return ("an " if word[0] in "aeiou" else "a ") + word


def _unique(rng, make, count: int) -> list[str]:
  out, seen = [], set()
  while len(out) < count:
    name = make(rng)
    if name not in seen:
      seen.add(name)
      out.append(name)
  return out


@CORPORA.register("facts", doc="synthetic facts about invented people, companies and cities (1- and 2-hop QA)")
def fact_corpus(seed: int = 0, num_people: int = 60, num_companies: int = 16, num_cities: int = 12,
                demo_fraction: float = 0.2, **_) -> RagCorpus:
  """The deterministic synthetic fact corpus (same seed -> same documents and questions).

  Documents: one per person ("P is a <profession> who was born in <city>. P works for <company> ...") and one per
  company ("C is a <industry> company headquartered in <city> ..."). Questions per person: birth city (1 hop),
  employer (1 hop), employer's headquarters city (2 hops).
  """
  rng = np.random.default_rng(seed)
  cities = _unique(rng, lambda r: _word(r, 2) + _CITY_SUFFIX[r.integers(len(_CITY_SUFFIX))], num_cities)
  companies = _unique(rng, lambda r: f"{_word(r, 2)} {_COMPANY_SUFFIX[r.integers(len(_COMPANY_SUFFIX))]}",
                      num_companies)
  people = _unique(rng, lambda r: f"{_word(r, 1)} {_word(r, 2)}", num_people)
  hq = {c: cities[rng.integers(num_cities)] for c in companies}
  docs, facts = [], []
  for c in companies:
    industry = _article(_INDUSTRIES[rng.integers(len(_INDUSTRIES))])
    docs.append(Document(f"company-{len(docs)}", c, f"{c} is {industry} company headquartered in {hq[c]}. "
                         f"It was founded in {int(rng.integers(1820, 2010))} and employs "
                         f"{int(rng.integers(40, 9000))} people."))
  for p in people:
    born, employer = cities[rng.integers(num_cities)], companies[rng.integers(num_companies)]
    docs.append(Document(f"person-{len(facts)}", p,
                         f"{p} is {_article(_PROFESSIONS[rng.integers(len(_PROFESSIONS))])} who was born in {born}. "
                         f"{p} works for {employer} and enjoys {_HOBBIES[rng.integers(len(_HOBBIES))]}."))
    facts.append((p, born, employer))
  questions = []
  for i, (p, born, employer) in enumerate(facts):
    q_emp = f"Which company does {p} work for?"
    q_hq = f"In which city is {employer} headquartered?"
    questions.append((i, Question(f"{i}-born", f"In which city was {p} born?", (born,))))
    questions.append((i, Question(f"{i}-employer", q_emp, (employer,))))
    questions.append((i, Question(f"{i}-hq", f"In which city is the company that {p} works for headquartered?",
                                  (hq[employer],), 2, (q_emp, q_hq), (employer, hq[employer]))))
  order = rng.permutation(num_people)
  demo_people = set(order[:max(1, int(round(num_people * demo_fraction)))].tolist())
  return RagCorpus("facts", DocumentStore(tuple(docs)),
                   tuple(q for i, q in questions if i not in demo_people),
                   tuple(q for i, q in questions if i in demo_people))


@CORPORA.register("essays", doc="the bundled Paul Graham essays as 100-word passages (retrieval only)")
def essay_corpus(words_per_passage: int = 100, **_) -> RagCorpus:
  """Real text: every bundled essay cut into passages titled by the essay's file name."""
  from lcjax.assets import haystack_files

  docs = []
  for path in haystack_files():
    with open(path, encoding="utf-8") as f:
      title = os.path.splitext(os.path.basename(path))[0]
      for j, chunk in enumerate(chunk_words(f.read(), words_per_passage)):
        docs.append(Document(f"{title}-{j}", title, chunk))
  return RagCorpus("essays", DocumentStore(tuple(docs)), (), ())


@CORPORA.register("loogle", doc="LooGLE short-dependency QA: long documents as passages, their questions")
def loogle_corpus(data_dir: str | None = None, words_per_passage: int = 100, demos_per_document: int = 1,
                  **_) -> RagCorpus:
  """LooGLE `shortdep_qa.jsonl` (data_dir, data_dir/loogle or the file itself): every document's text cut into
  passages; its Q/A pairs are the questions, the last `demos_per_document` of each document are demonstrations.

  Raises:
    DataError: the file is missing or malformed.
  """
  candidates = [data_dir or "", os.path.join(data_dir or "", "shortdep_qa.jsonl"),
                os.path.join(data_dir or "", "loogle", "shortdep_qa.jsonl")]
  path = next((c for c in candidates if c and os.path.isfile(c)), None)
  if path is None:
    raise DataError(f"LooGLE shortdep_qa.jsonl not found under {data_dir!r} (pass --data-dir or LCJAX_EVAL_DATA)")
  docs, questions, demos = [], [], []
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f):
      try:
        r = json.loads(line)
        pairs = r["qa_pairs"] if isinstance(r["qa_pairs"], list) else eval_pairs(r["qa_pairs"])
        text, title = r["input"], r.get("title", f"doc{n}")
      except (ValueError, KeyError) as e:
        raise DataError(f"{path}:{n + 1}: malformed LooGLE record ({e})") from None
      docs += [Document(f"{n}-{j}", title, c) for j, c in enumerate(chunk_words(text, words_per_passage))]
      qs = [Question(f"{n}-{j}", p["Q"], (p["A"],)) for j, p in enumerate(pairs)]
      cut = max(len(qs) - demos_per_document, 0)
      questions += qs[:cut]
      demos += qs[cut:]
  return RagCorpus("loogle", DocumentStore(tuple(docs)), tuple(questions), tuple(demos))


def eval_pairs(text: str) -> list[dict]:
  """LooGLE stores qa_pairs as a Python-literal string in some releases: parse it safely."""
  import ast

  return list(ast.literal_eval(text))
