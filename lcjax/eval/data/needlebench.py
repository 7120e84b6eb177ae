"""NeedleBench generators (Li et al., 2024; OpenCompass `datasets/needlebench*`): single-needle retrieval,
multi-needle retrieval, multi-needle reasoning, and the Ancestral Trace Challenge.

Construction follows OpenCompass: the haystack is the essays in a seed-shuffled order, cut to a token budget; needles
(wrapped in newlines) are inserted at *token* positions int(len * depth / 100) (multi-needle reasoning: the first
at `depth`, the next ones `diff` percent further); the English "End" prompt wraps document and question. The
needle pool is lcjax's own (the official needles.jsonl is not shipped); its records have the official schema
(needle, retrieval_question, arg1, arg2 = keyword). Multi-needle reasoning uses kinship facts like NeedleBench v2.
"""

from __future__ import annotations

import random

from lcjax.eval.data.haystack import fit_to_tokens
from lcjax.eval.task import Example, SampleSpec

PROMPT_END = ("You are an intelligent AI assistant skilled in answering user questions.\nPlease keep your answers "
              "concise and clear. Do not talk about irrelevant topics or repeat your answers.\nThe document given to "
              "you by the user is {context}\n\nNow, the question is: {question}")
PARALLEL_PROMPT_END = ("You are an intelligent AI assistant skilled in answering user questions.\nPlease keep your "
                       "answers concise and clear. Do not talk about irrelevant topics or repeat your answers.\n"
                       "The document given to you by the user is {context}\n\nNow, the questions are: {question}\n")
FORMAT = "Please answer in the format"
GUIDE = "Before answering, please consider what in the document is most relevant to this question."

# (place, item) pairs: "Hidden on <place> is the legendary <item>." (arg1 = place, arg2 = item = keyword).
_NEEDLE_PAIRS = [
    ("Emerald Island", "Stardust Shard"), ("the Copper Canyon", "Whispering Compass"),
    ("Mount Velloria", "Obsidian Lantern"), ("the Sapphire Marsh", "Tidecaller Horn"),
    ("Lake Orvanne", "Silver Quill of Ashes"), ("the Amber Desert", "Sunforged Chalice"),
    ("the Hollow Forest", "Moonpetal Amulet"), ("Glimmerport", "Clockwork Sparrow"),
    ("the Frostveil Peaks", "Ember Crown"), ("Isle of Morrow", "Glass Harp of Dawn"),
    ("the Violet Caves", "Starlit Abacus"), ("Port Calder", "Iron Lotus"),
]
FIRST_NAMES = ("James", "Jasmine", "Andrew", "Dan", "Jeff", "Kevin", "Shelley", "Christopher", "Maria", "Omar",
               "Priya", "Lucas", "Elena", "Tomas", "Aisha", "Noah", "Greta", "Hiro", "Leila", "Marcus", "Nadia",
               "Oscar", "Paula", "Quentin", "Rosa", "Stefan", "Tara", "Umar", "Vera", "Wesley", "Yara", "Zane",
               "Beatrice", "Caleb", "Delia", "Emil", "Fiona", "Gareth", "Helena", "Ivan")
LAST_NAMES = ("Hill", "Lane", "Williams", "Newton", "White", "Le", "Mills", "Baker", "Garcia", "Haddad", "Nair",
              "Moreau", "Petrova", "Silva", "Okafor", "Lindqvist", "Tanaka", "Rahimi", "Brooks", "Keller", "Novak",
              "Ortega", "Quinn", "Rossi", "Schmidt", "Tran", "Usman", "Vargas", "Walsh", "Young", "Zimmer", "Adler",
              "Boyd", "Castro", "Duarte", "Evans", "Fischer", "Grant", "Holm", "Ibsen")
RELATION_TERMS = ("father", "mother", "dad", "mom", "grandfather", "grandmother", "maternal grandmother",
                  "maternal grandfather", "paternal grandfather", "paternal grandmother")
RELATION_TEMPLATES = ("{A} is {B}'s {relationship}.", "{B}'s {relationship} is {A}.",
                      "{A}, as {B}'s {relationship}, has a significant impact on {B}'s upbringing.",
                      "{A} is not only {B}'s {relationship} but also {B}'s role model.", "{B} is the child of {A}.",
                      "For {B}, {A} is not just a {relationship}, but also a friend.",
                      "For {B}, {A} is more than just a {relationship}; {A} is a lifelong mentor of {B}.")
ATC_PROMPT = (
    "Here is a test for multi-step reasoning ability called the Ancestral Trace Challenge. In this test, we will "
    "simulate different people's familial relationships, and your task is to continuously reason through them "
    "until you identify the eldest ancestor.\n\nFor example:\nExample 1: If James Hill's father is Jasmine Lane, and "
    "no further information about familial relationships is provided in the text, then the oldest relative James "
    "Hill can trace back to in the provided text is \\boxed{{Jasmine Lane}}.\nExample 2: If Andrew Williams's "
    "grandmother is Dan Newton, and Dan Newton's father is James Hill, and no further information about familial "
    "relationships is provided in the text, then the oldest relative Andrew Williams can trace back to in the "
    "provided text is \\boxed{{James Hill}}.\nExample 3: If Jeff White's father is Kevin Le, Dan Newton's "
    "grandmother is Jeff White, and Jeff White's father is Kevin Le, and Shelley Mills is Dan Newton's "
    "great-granddaughter, and no further information about familial relationships is provided in the text, then "
    "the oldest relative Shelley Mills can trace back to in the provided text is \\boxed{{Kevin Le}}.\n\nNotes:\n1. "
    "You do not need to worry about the gender consistency of names in this test. For example, a name that is "
    "typically considered feminine can still be the father of another person. Our primary focus is on who is "
    "older.\n2. Ignore surname inheritance issues. For instance, Andrew Williams could still be the biological "
    "father of Christopher Baker. We only care about who is older and do not need to consider whether a child "
    "should inherit the father's or mother's surname.\n3. At the end of your response, remember to put your final "
    "answer within \\boxed{{}}. For example: \"So the oldest relative '{last_person}' can trace back to in the "
    "provided text is \\boxed{{somebody (your answer here)}}.\"\n\nNow, the scrambled family relationships are "
    "provided below:\n{shuffled_story}\n\nGiven the scrambled family relationships described above, who is the "
    "eldest relative that '{last_person}' can trace back to in the context?\n")


def needle_pool() -> list[dict]:
  """The English needle records (official schema: needle, retrieval_question, arg1, arg2, language)."""
  return [{"needle": f"Hidden on {place} is the legendary {item}.",
           "retrieval_question": (f"What legendary item is hidden on {place}? {FORMAT} 'The legendary item hidden on "
                                  f"{place} is ______.'"),
           "arg1": place, "arg2": item, "language": "English"} for place, item in _NEEDLE_PAIRS]


def all_names() -> list[str]:
  """The name pool of ATC and multi-needle reasoning (first x last names)."""
  return [f"{f} {l}" for f in FIRST_NAMES for l in LAST_NAMES]


def _haystack_ids(tokenizer, seed: int) -> list[int]:
  from lcjax.assets import haystack_files

  files = haystack_files()
  random.Random(seed).shuffle(files)
  text = ""
  for path in files:
    with open(path, encoding="utf-8") as f:
      text += f.read()
  return tokenizer.encode(text)


def _insert_tokens(tokenizer, ctx: list[int], needles: list[str], points: list[int]) -> str:
  """Inserts each needle's tokens at its point (later points shift by the earlier insertions) and decodes."""
  out = list(ctx)
  shift = 0
  for needle, point in zip(needles, points):
    ids = tokenizer.encode(needle)
    at = min(point + shift, len(out))
    out[at:at] = ids
    shift += len(ids)
  return tokenizer.decode(out)


def _fit(spec: SampleSpec, seed: int, render) -> tuple[int, str, int]:
  hay = _haystack_ids(spec.tokenizer, seed)
  while len(hay) < spec.length:
    hay = hay + hay
  return fit_to_tokens(lambda n: render(hay[:n]), spec.tokenizer, spec.length, lo=1, hi=len(hay),
                       guess=spec.length - 200)


def single_needle_example(spec: SampleSpec, index: int, guide: bool = False) -> Example:
  """NeedleBench single-needle retrieval (origin.py): one needle at `depth` percent of the haystack tokens."""
  rng = random.Random(spec.seed + index)
  record = rng.choice(needle_pool())
  needle = "\n" + record["needle"] + "\n"
  question = record["retrieval_question"]
  if guide:
    head, tail = question.split(FORMAT)
    question = head + GUIDE + " " + FORMAT + tail
  depth = 50.0 if spec.depth is None else float(spec.depth)
  render = lambda ctx: PROMPT_END.format(  # noqa: E731
      context=_insert_tokens(spec.tokenizer, ctx, [needle], [int(len(ctx) * depth / 100)]), question=question)
  n, text, tokens = _fit(spec, spec.seed + index, render)
  return Example(id=f"needlebench_single-{index}", prompt=text,
                 reference={"needle": needle, "keyword": record["arg2"]},
                 meta={"tokens": tokens, "depth": depth, "haystack_tokens": n, "needle": record["needle"]})


def multi_needle_retrieval_example(spec: SampleSpec, index: int, num_needles: int = 4) -> Example:
  """NeedleBench multi-needle retrieval (parallel.py): needles at evenly spread depths, all questions at once."""
  rng = random.Random(spec.seed + index)
  records = rng.sample(needle_pool(), num_needles)
  start = 0.0 if spec.depth is None else float(spec.depth)
  depths = [int(start + (100 - start) * i / num_needles) for i in range(num_needles)]
  needles = ["\n" + r["needle"] + "\n" for r in records]
  questions = "、".join(r["retrieval_question"].split("?")[0] + "?" for r in records)
  formats = "、".join(r["retrieval_question"].split("'")[1].split(".")[0] for r in records)
  question = questions + f"{FORMAT} of '" + formats + "'"
  render = lambda ctx: PARALLEL_PROMPT_END.format(  # noqa: E731
      context=_insert_tokens(spec.tokenizer, ctx, needles, [int(len(ctx) * d / 100) for d in depths]),
      question=question)
  n, text, tokens = _fit(spec, spec.seed + index, render)
  return Example(id=f"needlebench_multi_retrieval-{index}", prompt=text,
                 reference={"keywords": [r["arg2"] for r in records], "depths": depths},
                 meta={"tokens": tokens, "depth": start, "depths": depths})


def kinship_chain(rng: random.Random, num_people: int) -> tuple[list[str], list[str]]:
  """(names eldest first, one relationship sentence per consecutive pair) as ATC's `generate_chain_family_story`."""
  names = rng.sample(all_names(), num_people)
  facts = [rng.choice(RELATION_TEMPLATES).format(A=names[i], B=names[i + 1], relationship=rng.choice(RELATION_TERMS))
           for i in range(num_people - 1)]
  return names, facts


def multi_needle_reasoning_example(spec: SampleSpec, index: int, num_needles: int = 3, diff: int = 10) -> Example:
  """NeedleBench multi-needle reasoning (multi.py placement): a kinship chain of `num_needles` facts, the first at
  `depth`, each next one `diff` percent of the haystack after the previous; asks for the eldest ancestor."""
  rng = random.Random(spec.seed + index)
  names, facts = kinship_chain(rng, num_needles + 1)
  shuffled = list(facts)
  rng.shuffle(shuffled)
  needles = ["\n" + f + "\n" for f in shuffled]
  question = (f"Given the family relationships in the document, who is the eldest relative that '{names[-1]}' can "
              f"trace back to? Answer with the person's name.")
  depth = 50.0 if spec.depth is None else float(spec.depth)

  def render(ctx):
    total, points = len(ctx), []
    for i, needle in enumerate(needles):
      point = int(total * depth / 100) if i == 0 else int(points[-1] + total * diff / 100)
      points.append(min(point, total))
    return PROMPT_END.format(context=_insert_tokens(spec.tokenizer, ctx, needles, points), question=question)

  n, text, tokens = _fit(spec, spec.seed + index, render)
  return Example(id=f"needlebench_multi_reasoning-{index}", prompt=text, reference=names[0],
                 meta={"tokens": tokens, "depth": depth, "chain": names})


def atc_prompt(rng: random.Random, num_needles: int) -> tuple[str, str]:
  """(ATC v2 prompt, eldest name) for a chain of `num_needles` people, facts shuffled."""
  names, facts = kinship_chain(rng, num_needles)
  rng.shuffle(facts)
  return ATC_PROMPT.format(shuffled_story="".join(facts), last_person=names[-1]), names[0]


def atc_example(spec: SampleSpec, index: int) -> Example:
  """Ancestral Trace Challenge: as many people as fit the requested length (information-dense, no filler)."""
  seed = spec.seed + index
  if "num_needles" in spec.options:
    text, answer = atc_prompt(random.Random(seed), int(spec.options["num_needles"]))
    return Example(id=f"atc-{index}", prompt=text, reference=answer, meta={"tokens": len(spec.tokenizer.encode(text))})
  build = lambda n: atc_prompt(random.Random(seed), n + 1)[0]  # noqa: E731
  n, text, tokens = fit_to_tokens(build, spec.tokenizer, spec.length, lo=1, hi=len(all_names()) - 1,
                                  guess=max(2, (spec.length - 600) // 16))
  _, answer = atc_prompt(random.Random(seed), n + 1)
  return Example(id=f"atc-{index}", prompt=text, reference=answer, meta={"tokens": tokens, "num_needles": n + 1})
