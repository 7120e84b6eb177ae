"""RULER's synthetic tasks (Hsieh et al., 2024; NVIDIA/RULER `scripts/data/synthetic/*.py`), generated at any
length in the evaluated model's tokens and, for NIAH, at any needle depth.

Templates, needle sentence, noise sentence, key/value kinds and answer prefixes are RULER's. Differences: sentence
splitting of the essay haystack is rule-based (RULER uses NLTK punkt); word keys draw an adjective and a noun
independently from wonderwords' lists (RULER draws from their full product, the same distribution); with an
explicit `depth` the first needle sits at that depth (RULER samples depths); lengths count the prompt without the
chat template and the answer budget (RULER counts both).
"""

from __future__ import annotations

import functools
import random
import string
import uuid

from lcjax.eval.data.haystack import essay_prefix, essay_words, fit_to_tokens, insert_at_depths, split_sentences
from lcjax.eval.task import Example, SampleSpec

NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
NIAH_TEMPLATE = ("Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
                 "I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic "
                 "{type_needle_v} for {query} mentioned in the provided text?")
NIAH_ANSWER_PREFIX = " The special magic {type_needle_v} for {query} mentioned in the provided text are"
VT_TEMPLATE = ("Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
               "Question: Find all variables that are assigned the value {query} in the text above.")
VT_ANSWER_PREFIX = (" Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables "
                    "are assigned the value {query}, they are: ")
CWE_TEMPLATE = ("Below is a numbered list of words. In these words, some appear more often than others. Memorize the "
                "ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above "
                "list?")
CWE_ANSWER_PREFIX = " Answer: The top 10 words that appear most often in the list are:"
FWE_TEMPLATE = ("Read the following coded text and track the frequency of each coded word. Find the three most "
                "frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore "
                "the dots '....'. What are the three most frequently appeared words in the above coded text?")
FWE_ANSWER_PREFIX = (" Answer: According to the coded text above, the three most frequently appeared words are:")

# The 13 RULER configurations of synthetic.yaml that are NIAH variants.
NIAH_VARIANTS = {
    "niah_single_1": dict(haystack="noise", key="words", value="numbers", k=1, v=1, q=1),
    "niah_single_2": dict(haystack="essay", key="words", value="numbers", k=1, v=1, q=1),
    "niah_single_3": dict(haystack="essay", key="words", value="uuids", k=1, v=1, q=1),
    "niah_multikey_1": dict(haystack="essay", key="words", value="numbers", k=4, v=1, q=1),
    "niah_multikey_2": dict(haystack="needle", key="words", value="numbers", k=1, v=1, q=1),
    "niah_multikey_3": dict(haystack="needle", key="uuids", value="uuids", k=1, v=1, q=1),
    "niah_multivalue": dict(haystack="essay", key="words", value="numbers", k=1, v=4, q=1),
    "niah_multiquery": dict(haystack="essay", key="words", value="numbers", k=4, v=1, q=4),
}


@functools.lru_cache(maxsize=1)
def _wonder_lists() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
  from wonderwords import random_word

  load = random_word._get_words_from_text_file  # noqa: SLF001 - RULER uses this very function
  return (tuple(load("nounlist.txt")), tuple(load("adjectivelist.txt")), tuple(load("verblist.txt")))


def random_value(kind: str, rng: random.Random) -> str:
  """A 7-digit number, an adjective-noun word or a UUID4 (RULER's needle key/value kinds)."""
  if kind == "numbers":
    return str(rng.randint(10 ** 6, 10 ** 7 - 1))
  if kind == "words":
    nouns, adjs, _ = _wonder_lists()
    return f"{rng.choice(adjs)}-{rng.choice(nouns)}"
  if kind == "uuids":
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
  raise ValueError(f"unknown needle kind {kind!r}; known: numbers, words, uuids")


def _singular(text: str) -> str:
  return text.replace("Some", "A").replace("are all", "is").replace("are", "is").replace("answers", "answer")


def niah_example(variant: str, spec: SampleSpec, index: int) -> Example:
  """One RULER NIAH sample of `variant` (a key of NIAH_VARIANTS) at spec.length tokens."""
  cfg = NIAH_VARIANTS[variant]
  seed = spec.seed + index
  rng = random.Random(seed)
  k = max(cfg["k"], cfg["q"])
  keys = [random_value(cfg["key"], rng) for _ in range(k)]
  values = [[random_value(cfg["value"], rng) for _ in range(cfg["v"])] for _ in range(k)]
  needles = [NEEDLE.format(type_needle_v=cfg["value"], key=key, value=v) for key, vs in zip(keys, values) for v in vs]
  random.Random(seed).shuffle(needles)
  queried = rng.sample(range(k), cfg["q"])
  query = keys[queried[0]] if len(queried) == 1 else ", ".join(keys[i] for i in queried[:-1]) + ", and " + \
      keys[queried[-1]]
  answers = [a for i in queried for a in values[i]]
  depth = 50.0 if spec.depth is None else float(spec.depth)
  depths = [depth] + [rng.choice(range(0, 101, 5)) for _ in needles[1:]]
  distractors = [NEEDLE.format(type_needle_v=cfg["value"], key=random_value(cfg["key"], rng),
                               value=random_value(cfg["value"], rng)) for _ in range(4096)] \
      if cfg["haystack"] == "needle" else []
  template, prefix, kind = NIAH_TEMPLATE, NIAH_ANSWER_PREFIX, cfg["value"]
  if cfg["q"] * cfg["v"] == 1:
    template, prefix, kind = _singular(template), _singular(prefix), kind[:-1]

  def context(n: int) -> str:
    if cfg["haystack"] == "essay":
      return insert_at_depths(split_sentences(essay_prefix(n)), needles, depths)
    pool = [NOISE] * n if cfg["haystack"] == "noise" else [distractors[i % len(distractors)] for i in range(n)]
    for pos, needle in sorted(zip([int(n * d / 100) for d in depths], needles), key=lambda x: -x[0]):
      pool.insert(pos, needle)
    return "\n".join(pool)

  build = lambda n: template.format(type_needle_v=kind, context=context(n), query=query)  # noqa: E731
  guess = spec.length if cfg["haystack"] == "essay" else max(1, spec.length // 25)
  n, text, tokens = fit_to_tokens(build, spec.tokenizer, spec.length, lo=1, guess=guess)
  return Example(id=f"{variant}-{index}", prompt=text, reference=answers,
                 answer_prefix=prefix.format(type_needle_v=kind, query=query),
                 meta={"tokens": tokens, "depth": depth, "needles": needles, "haystack_units": n, "seed": seed})


def _vt_chain(rng: random.Random, num_chains: int, num_hops: int, letters: int = 5):
  names = []
  while len(set(names)) < num_chains * (num_hops + 1):
    names.append("".join(rng.choices(string.ascii_uppercase, k=letters)))
  names = list(dict.fromkeys(names))
  chains, groups = [], []
  for c in range(num_chains):
    group = names[c * (num_hops + 1):(c + 1) * (num_hops + 1)]
    chain = [f"VAR {group[0]} = {rng.randint(10000, 99998)}"]
    chain += [f"VAR {group[j + 1]} = VAR {group[j]} " for j in range(num_hops)]
    groups.append(group)
    chains.append(chain)
  return groups, chains


def _vt_context(rng: random.Random, chains, num_noises: int) -> str:
  sentences = [NOISE + "\n"] * num_noises
  for chain in chains:
    positions = sorted(rng.sample(range(len(sentences)), len(chain)))
    for j, pos in enumerate(positions):
      sentences.insert(pos + j, chain[j])
  return " ".join(sentences).replace(". \n", ".\n")


def vt_example(spec: SampleSpec, index: int, num_chains: int = 1, num_hops: int = 4) -> Example:
  """RULER variable tracking with its one-shot ICL example (a short chain of 3-letter variables)."""
  seed = spec.seed + index
  icl_rng = random.Random(seed * 7919 + 1)
  icl_groups, icl_chains = _vt_chain(icl_rng, num_chains, num_hops, letters=3)
  icl_value = icl_chains[0][0].split("=")[-1].strip()
  icl = (VT_TEMPLATE.format(context=_vt_context(icl_rng, icl_chains, 12), query=icl_value) +
         VT_ANSWER_PREFIX.format(num_v=num_hops + 1, query=icl_value) + " " + " ".join(icl_groups[0]))
  groups, chains = _vt_chain(random.Random(seed), num_chains, num_hops)
  value = chains[0][0].split("=")[-1].strip()

  def build(n: int) -> str:
    ctx = _vt_context(random.Random(seed + 1), chains, max(n, num_hops + 2))
    return icl + "\n\n" + VT_TEMPLATE.format(context=ctx, query=value)

  n, text, tokens = fit_to_tokens(build, spec.tokenizer, spec.length, lo=1, guess=max(2, spec.length // 25))
  return Example(id=f"vt-{index}", prompt=text, reference=groups[0],
                 answer_prefix=VT_ANSWER_PREFIX.format(num_v=num_hops + 1, query=value),
                 meta={"tokens": tokens, "noises": n, "seed": seed, "value": value})


@functools.lru_cache(maxsize=4)
def _cwe_vocab(seed: int) -> tuple[str, ...]:
  nouns, adjs, verbs = _wonder_lists()
  words = sorted(set(nouns + adjs + verbs))
  random.Random(seed).shuffle(words)
  return tuple(words)


def _cwe_list(rng: random.Random, seed: int, num_words: int, common_repeats: int, uncommon_repeats: int,
              common: int = 10) -> tuple[str, list[str]]:
  words = rng.sample(_cwe_vocab(seed), num_words)
  top, rest = words[:common], words[common:]
  listing = top * common_repeats + rest * uncommon_repeats
  random.Random(seed).shuffle(listing)
  return " ".join(f"{i + 1}. {w}" for i, w in enumerate(listing)), top


def cwe_example(spec: SampleSpec, index: int) -> Example:
  """RULER common-words extraction (10 words repeated 30x among words repeated 3x; 6x/1x below 4096 tokens),
  preceded by its worked example."""
  seed = spec.seed + index
  small = spec.length < 4096
  reps = (6, 1) if small else (30, 3)

  def build(n: int) -> str:
    rng = random.Random(seed)
    ex_ctx, ex_ans = _cwe_list(rng, seed, 20 if small else 40, 3 if small else 10, 1 if small else 3)
    ctx, _ = _cwe_list(rng, seed, n + 10, *reps)
    example = CWE_TEMPLATE.format(context=ex_ctx) + CWE_ANSWER_PREFIX + " " + \
        " ".join(f"{i + 1}. {w}" for i, w in enumerate(ex_ans))
    return example + "\n" + CWE_TEMPLATE.format(context=ctx)

  n, text, tokens = fit_to_tokens(build, spec.tokenizer, spec.length, lo=1, hi=len(_cwe_vocab(seed)) - 10,
                                  guess=max(2, spec.length // 16))
  rng = random.Random(seed)
  _cwe_list(rng, seed, 20 if small else 40, 3 if small else 10, 1 if small else 3)
  _, answer = _cwe_list(rng, seed, n + 10, *reps)
  return Example(id=f"cwe-{index}", prompt=text, reference=answer, answer_prefix=CWE_ANSWER_PREFIX,
                 meta={"tokens": tokens, "uncommon_words": n, "seed": seed})


def fwe_example(spec: SampleSpec, index: int, alpha: float = 2.0, word_len: int = 6) -> Example:
  """RULER frequent-words extraction: coded words drawn from a zeta(alpha) law; '...' takes the top rank."""
  from scipy.special import zeta

  seed = spec.seed + index
  rng = random.Random(seed)
  vocab_size = max(spec.length // 50, 8)
  vocab = []
  while len(set(vocab)) < vocab_size:
    vocab.append("".join(rng.choices(string.ascii_lowercase, k=word_len)))
  vocab = sorted(set(vocab))
  random.Random(seed).shuffle(vocab)
  vocab[0] = "..."

  def build(n: int) -> str:
    counts = [int(n * (k ** -alpha) / zeta(alpha)) for k in range(1, len(vocab) + 1)]
    words = [w for w, c in zip(vocab, counts) for _ in range(c)]
    random.Random(seed).shuffle(words)
    return FWE_TEMPLATE.format(context=" ".join(words))

  n, text, tokens = fit_to_tokens(build, spec.tokenizer, spec.length, lo=1, guess=max(2, spec.length // word_len))
  return Example(id=f"fwe-{index}", prompt=text, reference=vocab[1:4], answer_prefix=FWE_ANSWER_PREFIX,
                 meta={"tokens": tokens, "num_words": n, "seed": seed})


def essay_word_count() -> int:
  """Number of words in the bundled haystack (sizes beyond it cycle through the essays again)."""
  return len(essay_words())
