"""Needle Threading generators (Roberts et al., 2024, "Can LLMs Follow Threads through Near-Million-Scale
Haystacks?"): the haystack is a JSON object of UUID keys and UUID values.

- single needle: retrieve the value of one key placed at `depth`;
- multiple needles: retrieve the values of several keys;
- threading: the value of a key is another key; follow the thread from a start key for `hops` steps and give the
  final value (the thread's links sit at random positions, the start at `depth`);
- multi-threading: several threads followed at once.
Sizes are the number of key-value pairs, fitted to the requested token length.
"""

from __future__ import annotations

import random
import uuid

from lcjax.eval.data.haystack import fit_to_tokens
from lcjax.eval.task import Example, SampleSpec

SINGLE = ("Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n"
          "Key: \"{key}\"\nCorresponding value:")
MULTI = ("Extract the values corresponding to the specified keys in the JSON object below.\n\n{context}\n\n"
         "Keys: {keys}\nGive each key's value, one per line, as \"key: value\".")
THREAD = ("The JSON object below contains threads: the value of a key may itself be a key elsewhere in the object. "
          "Starting from the given key, find its value, use that value as the next key, and repeat until the value "
          "is not a key in the object. Give the final value.\n\n{context}\n\nStarting key: \"{key}\"\nFinal value:")
MULTI_THREAD = ("The JSON object below contains threads: the value of a key may itself be a key elsewhere in the "
                "object. For each starting key, follow its thread (value -> next key) until the value is not a key "
                "in the object, and give the final value.\n\n{context}\n\nStarting keys: {keys}\nGive the final "
                "value of each thread, one per line, as \"starting key: final value\".")


def _uuid(rng: random.Random) -> str:
  return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _json(pairs: list[tuple[str, str]]) -> str:
  return "{\n" + ",\n".join(f'  "{k}": "{v}"' for k, v in pairs) + "\n}"


def _threads(rng: random.Random, count: int, hops: int) -> list[list[tuple[str, str]]]:
  out = []
  for _ in range(count):
    keys = [_uuid(rng) for _ in range(hops + 1)]
    out.append([(keys[i], keys[i + 1]) for i in range(hops)])
  return out


def _place(filler: list[tuple[str, str]], fixed: list[tuple[tuple[str, str], float]]):
  """Filler pairs with each (pair, depth%) inserted at int(len * depth / 100) (later insertions shift)."""
  pairs = list(filler)
  for pair, depth in sorted(fixed, key=lambda x: x[1]):
    pairs.insert(min(int(len(pairs) * depth / 100), len(pairs)), pair)
  return pairs


def threading_example(spec: SampleSpec, index: int, mode: str = "single", num: int = 1, hops: int = 3) -> Example:
  """One Needle Threading sample; mode in {single, multi, thread, multi_thread}."""
  seed = spec.seed + index
  depth = 50.0 if spec.depth is None else float(spec.depth)
  rng = random.Random(seed)
  if mode in ("single", "multi"):
    needles = [(_uuid(rng), _uuid(rng)) for _ in range(num)]
    fixed = [(needles[0], depth)] + [(p, rng.uniform(0, 100)) for p in needles[1:]]
    keys, answers = [k for k, _ in needles], [v for _, v in needles]
  else:
    threads = _threads(rng, num, hops)
    fixed = []
    for t, links in enumerate(threads):
      fixed.append((links[0], depth if t == 0 else rng.uniform(0, 100)))
      fixed += [(link, rng.uniform(0, 100)) for link in links[1:]]
    keys, answers = [links[0][0] for links in threads], [links[-1][1] for links in threads]
  filler_rng = random.Random(seed + 1)
  pool = [(_uuid(filler_rng), _uuid(filler_rng)) for _ in range(max(8, spec.length // 16))]
  template = {"single": SINGLE, "multi": MULTI, "thread": THREAD, "multi_thread": MULTI_THREAD}[mode]
  key_text = keys[0] if len(keys) == 1 and mode in ("single", "thread") else ", ".join(f'"{k}"' for k in keys)

  def build(n: int) -> str:
    while len(pool) < n:
      pool.append((_uuid(filler_rng), _uuid(filler_rng)))
    return template.format(context=_json(_place(pool[:n], fixed)), key=key_text, keys=key_text)

  n, text, tokens = fit_to_tokens(build, spec.tokenizer, spec.length, lo=0, guess=max(1, spec.length // 40))
  return Example(id=f"threading_{mode}-{index}", prompt=text, reference=answers,
                 meta={"tokens": tokens, "depth": depth, "pairs": n + len(fixed), "keys": keys})
