"""DRAG and IterDRAG (Yue et al., ICLR'25): demonstration-based RAG prompts and the iterative Self-Ask controller,
with exact effective-context-length accounting.

  strategy = parse_strategy("drag:k=8,m=2")      # or "iterdrag:n=3", "closed"
  result = answer(lm, retriever, corpus, question, strategy)
  result.prediction, result.calls, result.effective_length

DRAG prompt = instruction + m demonstrations + test block. A demonstration is (k documents retrieved for the demo
question, question, answer); the test block is (k documents for the test question, question, "Answer:").
Documents appear in *reverse* rank order, so the top-ranked one is closest to the question, each cut to its first
`max_doc_words` words. With a token limit, demonstrations are dropped first (oldest first), then the
lowest-ranked test documents.

IterDRAG: the same prompt with Self-Ask demonstrations. The model writes "Follow up: <sub-query>"; the controller
retrieves k new documents for it, appends them and "Intermediate answer:", and the model continues (its next
output holds the intermediate answer and either another follow-up or "So the final answer is: ..."). `n` is the
number of retrieval rounds (the initial one plus follow-ups, n = 1 is a single call): at the cap the model writes
the pending intermediate answer (one line) and the controller appends "So the final answer is:" (forced answer).
Effective context length = sum of the token lengths of every prompt sent (the paper's l(theta): re-read tokens
count). `reusable_tokens` is what a prefix cache could skip (the common token prefix with the previous prompt),
reported separately; the lcjax Generator does not reuse it across calls.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Protocol, Sequence

import numpy as np

from lcjax.errors import ConfigError
from lcjax.rag.corpus import Question, RagCorpus
from lcjax.rag.retriever import Hit, Retriever

INSTRUCTION = ("You are an expert in question answering. Answer the question using the documents. "
               "Write only the answer, as short as possible.")
ITER_INSTRUCTION = ("You are an expert in question answering. Answer the question using the documents. When a "
                    "question needs several facts, ask follow-up questions, answer each from the documents, then "
                    "give the final answer.")
FOLLOW_UP, INTERMEDIATE, FINAL = "Follow up:", "Intermediate answer:", "So the final answer is:"


@dataclasses.dataclass(frozen=True)
class RagStrategy:
  """kind: "drag" or "iterdrag"; k documents per retrieval; m demonstrations; n retrieval rounds (IterDRAG)."""

  kind: str = "drag"
  k: int = 4
  m: int = 0
  n: int = 1
  max_doc_words: int = 1024
  max_prompt_tokens: int | None = None
  max_new_tokens: int = 24

  @property
  def theta(self) -> tuple[int, int, int]:
    """(k, m, n) of the allocation model (DRAG has n = 1)."""
    return self.k, self.m, self.n if self.kind == "iterdrag" else 1

  @property
  def label(self) -> str:
    return f"{self.kind}:k={self.k},m={self.m}" + (f",n={self.n}" if self.kind == "iterdrag" else "")


_DEFAULTS = {"drag": dict(k=4, m=0), "iterdrag": dict(k=4, m=1, n=3), "closed": dict(k=0, m=0)}


def parse_strategy(text: str) -> RagStrategy:
  """ "drag:k=8,m=2" | "iterdrag:n=3" (k=4, m=1 default) | "closed" (k = m = 0) -> RagStrategy.

  Raises:
    ConfigError: unknown kind, unknown key or a bad value, naming what is accepted.
  """
  kind, _, rest = text.strip().partition(":")
  if kind not in _DEFAULTS:
    raise ConfigError(f"unknown RAG strategy {kind!r}; accepted: drag:k=..,m=.., iterdrag:k=..,m=..,n=.., closed")
  values = dict(_DEFAULTS[kind])
  fields = {f.name for f in dataclasses.fields(RagStrategy)} - {"kind"}
  for pair in filter(None, rest.split(",")):
    key, _, value = pair.partition("=")
    if key not in fields:
      raise ConfigError(f"unknown RAG option {key!r} in {text!r}; accepted: {', '.join(sorted(fields))}")
    try:
      values[key] = int(value)
    except ValueError:
      raise ConfigError(f"RAG option {key}={value!r} is not an integer") from None
  strategy = RagStrategy(kind="drag" if kind == "closed" else kind, **values)
  if strategy.k < 0 or strategy.m < 0 or strategy.n < 1:
    raise ConfigError(f"RAG strategy {text!r}: need k >= 0, m >= 0, n >= 1")
  return strategy


def documents_block(store, hits: Sequence[Hit], max_words: int | None) -> str:
  """Retrieved documents in reverse rank order (rank 1 last), one per line: "Document [r] (Title: t) text"."""
  return "".join(f"Document [{r}] {store[h.index].render(max_words)}\n"
                 for r, h in reversed(list(enumerate(hits, 1))))


def select_demos(corpus: RagCorpus, question: Question, m: int, seed: int = 0) -> list[Question]:
  """m demonstrations sampled (deterministically per question) from the corpus' demo pool, never the question
  itself (different id and different text).

  Raises:
    ConfigError: m larger than the pool.
  """
  pool = [d for d in corpus.demos if d.id != question.id and d.question != question.question]
  if m > len(pool):
    raise ConfigError(f"m={m} demonstrations requested but the {corpus.name!r} demo pool has {len(pool)}")
  rng = np.random.default_rng([seed, zlib.crc32(question.id.encode())])
  return [pool[i] for i in sorted(rng.choice(len(pool), size=m, replace=False))] if m else []


def _demo_block(store, retriever, demo: Question, s: RagStrategy, iterative: bool) -> str:
  docs = documents_block(store, retriever.retrieve([demo.question], s.k)[0], s.max_doc_words) if s.k else ""
  if not iterative:
    return f"{docs}Question: {demo.question}\nAnswer: {demo.answers[0]}\n\n"
  chain = ""
  for sub_q, sub_a in zip(demo.sub_questions, demo.sub_answers):
    sub_docs = documents_block(store, retriever.retrieve([sub_q], s.k)[0], s.max_doc_words) if s.k else ""
    chain += f"{FOLLOW_UP} {sub_q}\n{sub_docs}{INTERMEDIATE} {sub_a}\n"
  return f"{docs}Question: {demo.question}\n{chain}{FINAL} {demo.answers[0]}\n\n"


def build_prompt(corpus: RagCorpus, retriever: Retriever | None, question: Question, strategy: RagStrategy,
                 count=None, seed: int = 0) -> tuple[str, list[Hit]]:
  """The DRAG (or IterDRAG initial) prompt and the test question's retrieved documents.

  Args:
    count: text -> token count, needed when `strategy.max_prompt_tokens` is set.
  Returns:
    (prompt text, hits of the test question, best first). DRAG ends with "Answer:"; IterDRAG with the question
    line (the model continues the Self-Ask chain).
  """
  iterative = strategy.kind == "iterdrag"
  if strategy.k and retriever is None:
    raise ConfigError("k > 0 documents need a retriever")
  demos = [_demo_block(corpus.store, retriever, d, strategy, iterative)
           for d in select_demos(corpus, question, strategy.m, seed)]
  hits = retriever.retrieve([question.question], strategy.k)[0] if strategy.k else []
  head = (ITER_INSTRUCTION if iterative else INSTRUCTION) + "\n\n"
  tail = f"Question: {question.question}\n" + ("" if iterative else "Answer:")

  def render(demos, hits):
    return head + "".join(demos) + documents_block(corpus.store, hits, strategy.max_doc_words) + tail

  prompt = render(demos, hits)
  if strategy.max_prompt_tokens is not None:
    if count is None:
      raise ConfigError("max_prompt_tokens needs a token counter")
    while count(prompt) > strategy.max_prompt_tokens and (demos or hits):
      demos, hits = (demos[1:], hits) if demos else (demos, hits[:-1])
      prompt = render(demos, hits)
  return prompt, hits


def closed_book_prompt(question: Question) -> str:
  """The prompt without documents or demonstrations (what DRAG with k = m = 0 reduces to)."""
  return f"{INSTRUCTION}\n\nQuestion: {question.question}\nAnswer:"


class CompletionLM(Protocol):
  """What the controller needs from a model: token ids of a prompt and a greedy completion cut at stop strings."""

  def encode(self, text: str) -> list[int]: ...

  def complete(self, prompt: str, max_new_tokens: int, stop: Sequence[str]) -> str: ...


@dataclasses.dataclass
class RagResult:
  """One answered question: the prediction and the exact cost of getting it."""

  prediction: str
  prompt_lengths: list[int]
  reusable_tokens: int = 0
  forced: bool = False
  follow_ups: list[str] = dataclasses.field(default_factory=list)
  documents: list[str] = dataclasses.field(default_factory=list)

  @property
  def calls(self) -> int:
    return len(self.prompt_lengths)

  @property
  def effective_length(self) -> int:
    """l(theta): total input tokens over every call."""
    return sum(self.prompt_lengths)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
  n = 0
  for x, y in zip(a, b):
    if x != y:
      break
    n += 1
  return n


class _Session:
  """Sends prompts, keeping the token accounting."""

  def __init__(self, lm: CompletionLM, max_new_tokens: int):
    self.lm, self.max_new_tokens = lm, max_new_tokens
    self.lengths, self.reusable, self._last = [], 0, None

  def __call__(self, prompt: str, stop: Sequence[str]) -> str:
    ids = self.lm.encode(prompt)
    self.lengths.append(len(ids))
    if self._last is not None:
      self.reusable += _common_prefix(self._last, ids)
    self._last = ids
    return self.lm.complete(prompt, self.max_new_tokens, stop)


def _first_line(text: str) -> str:
  return text.strip().split("\n")[0].strip()


def answer(lm: CompletionLM, retriever: Retriever | None, corpus: RagCorpus, question: Question,
           strategy: RagStrategy, seed: int = 0) -> RagResult:
  """Answers one question with DRAG (one call) or IterDRAG (the Self-Ask loop), counting every prompt."""
  prompt, hits = build_prompt(corpus, retriever, question, strategy, lm.encode if strategy.max_prompt_tokens else None,
                              seed)
  send = _Session(lm, strategy.max_new_tokens)
  docs = [h.id for h in hits]
  if strategy.kind != "iterdrag":
    out = send(prompt, ["\n"])
    return RagResult(_first_line(out), send.lengths, send.reusable, documents=docs)
  shown = {h.index for h in hits}
  follow_ups: list[str] = []
  pending, rounds = False, 1
  while rounds < strategy.n:
    out = send(prompt, [INTERMEDIATE, "\nQuestion:"])
    if FINAL in out:
      return RagResult(_first_line(out.split(FINAL, 1)[1]), send.lengths, send.reusable, False, follow_ups, docs)
    if FOLLOW_UP not in out:  # off-format output: keep it and force the answer
      prompt += out.rstrip() + "\n"
      pending = False
      break
    head, tail = out.split(FOLLOW_UP, 1)
    sub_query = _first_line(tail)
    follow_ups.append(sub_query)
    k = min(strategy.k, len(corpus.store) - len(shown))
    new = retriever.retrieve([sub_query], k, [shown])[0] if k and retriever is not None else []
    shown |= {h.index for h in new}
    docs += [h.id for h in new]
    prompt += (head.rstrip() + "\n" if head.strip() else head) + f"{FOLLOW_UP} {sub_query}\n"
    prompt += documents_block(corpus.store, new, strategy.max_doc_words) + INTERMEDIATE
    pending, rounds = True, rounds + 1
  if pending:  # the cap: the model answers the pending follow-up (one line), then is forced to answer
    prompt += " " + _first_line(send(prompt, ["\n"])) + "\n"
  out = send(prompt + FINAL, ["\n"])
  return RagResult(_first_line(out), send.lengths, send.reusable, True, follow_ups, docs)


def answer_batch(lm: CompletionLM, retriever: Retriever | None, corpus: RagCorpus, questions: Sequence[Question],
                 strategy: RagStrategy, seed: int = 0) -> list[RagResult]:
  """`answer` for many questions; DRAG prompts go through `lm.complete_batch` in one batch when the LM has it."""
  if strategy.kind == "iterdrag" or not hasattr(lm, "complete_batch"):
    return [answer(lm, retriever, corpus, q, strategy, seed) for q in questions]
  count = lm.encode if strategy.max_prompt_tokens else None
  built = [build_prompt(corpus, retriever, q, strategy, count, seed) for q in questions]
  outs = lm.complete_batch([p for p, _ in built], strategy.max_new_tokens, ["\n"])
  return [RagResult(_first_line(o), [len(lm.encode(p))], documents=[h.id for h in hits])
          for (p, hits), o in zip(built, outs)]


class PretrainedLM:
  """`CompletionLM` over a loaded model: raw-text prompts (no chat template), greedy decoding, cut at stops."""

  def __init__(self, pretrained, prefill_chunk: int | None = None):
    from lcjax.inference import Generator

    self.pretrained = pretrained
    self.generator = Generator(pretrained.cfg, pretrained.graphdef, pad_to=128, prefill_chunk=prefill_chunk)

  def encode(self, text: str) -> list[int]:
    return self.pretrained.tokenizer.encode(text)

  def complete(self, prompt: str, max_new_tokens: int, stop: Sequence[str]) -> str:
    return self.complete_batch([prompt], max_new_tokens, stop)[0]

  def complete_batch(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str],
                     batch: int = 8) -> list[str]:
    """Greedy completions of many prompts, `batch` rows per generate call (rows padded to the longest)."""
    out = []
    for start in range(0, len(prompts), batch):
      ids = [self.encode(p) for p in prompts[start:start + batch]]
      tokens = self.generator.generate(self.pretrained.state, ids, max_new_tokens=max_new_tokens).tokens
      out += [cut_at_stops(self.pretrained.tokenizer.decode(t), stop) for t in tokens]
    return out


def cut_at_stops(text: str, stop: Sequence[str]) -> str:
  """`text` up to the first occurrence of any stop string (a leading newline is not a stop)."""
  end = len(text)
  for s in stop:
    i = text.find(s, 1 if s.startswith("\n") or s == "\n" else 0)
    if i >= 0:
      end = min(end, i)
  return text[:end]
