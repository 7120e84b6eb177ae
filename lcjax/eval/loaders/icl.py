"""LongICLBench loaders (TIGER-AI-Lab/LongICLBench `processed_data/`, `*_infer.py` prompting).

- Few-NERD: demonstrations from `fewnerd_train_10turns.json` ("Sentence: ...\\n" + "entity: type" lines), test
  sentences from `fewnerd_test_1800.json`; the instruction lists the 66 fine tags of `id2fine_tags.json` when
  options["instruct"]; the number of shots is the official round map (options["round"] 1-5) or, by default, as many
  as fit the input budget (spec.length tokens).
- DialogRE: demonstrations from `train_dialogueRE_processed.json` (one record per relation, merged per dialogue),
  test dialogues from `test_dialogueRE.json`; the model continues "The N respective relations ... are: ".
- Label classification (banking77-style): JSONL {"text", "label"} train/test files plus `labels.json`; demos are
  "service query: ...\\nintent category: ...\\n"; exact match of the predicted label.
Prompts are raw text (the official scripts prompt base models without a chat template).
"""

from __future__ import annotations

from lcjax.eval.data.haystack import fit_to_tokens
from lcjax.eval.loaders.common import limit, read_json, read_jsonl, resolve
from lcjax.eval.task import Example, SampleSpec

FEWNERD_ROUND_SHOTS = {1: 57, 2: 114, 3: 170, 4: 224, 5: 281}
DIALOGUE_ROUND_SHOTS = {1: 34, 2: 67, 3: 99, 4: 131, 5: 163}


def _shots(spec: SampleSpec, rounds: dict, build, most: int) -> int:
  if "round" in spec.options:
    return rounds[int(spec.options["round"])]
  if not spec.length or spec.tokenizer is None:
    return rounds[1]
  n, _, _ = fit_to_tokens(build, spec.tokenizer, spec.length, lo=1, hi=most, guess=max(1, spec.length // 60))
  return n


def fewnerd_demo(train: list[dict], shots: int, tags: list[str] | None) -> str:
  """The Few-NERD demonstration block (`format_long_prompt`)."""
  if tags:
    inst = ("Given the sentence, please find the name entities in the sentence and their corresponding entity types "
            "in the strict format of given examples above (Entity: EntityType), please only strictly choose from "
            "the following entity types: " + ", ".join(tags) + ".\n")
  else:
    inst = ("Given the sentence, please find the name entities in the sentence and their corresponding entity types "
            "in the strict format of given examples as following (Entity: EntityType):\n")
  body = "".join("Sentence: " + d["sentence"] + "\n" + "".join(f"{e}: {t}\n" for e, t in d["entities"].items())
                 for d in train[:shots])
  return inst + body


def fewnerd_examples(spec: SampleSpec) -> list[Example]:
  """Few-NERD test sentences after a long demonstration."""
  train = read_json(resolve(spec.data_path, "fewnerd_train_10turns.json", "LongICLBench Few-NERD"))
  test = read_json(resolve(spec.data_path, "fewnerd_test_1800.json", "LongICLBench Few-NERD"))
  tags = list(read_json(resolve(spec.data_path, "id2fine_tags.json", "LongICLBench Few-NERD")).values()) \
      if spec.options.get("instruct") else None
  probe = test[0]["sentence"]
  shots = _shots(spec, FEWNERD_ROUND_SHOTS,
                 lambda n: fewnerd_demo(train, n, tags) + "Sentence: " + probe + "\n", len(train))
  demo = fewnerd_demo(train, shots, tags)
  return [Example(id=str(i), prompt=demo + "Sentence: " + row["sentence"] + "\n",
                  reference={"sentence": row["sentence"], "entities": row["entities"]}, meta={"shots": shots})
          for i, row in enumerate(limit(test, spec.num_samples))]


def _merge_dialogues(rows: list[dict]) -> list[dict]:
  merged: dict[str, list] = {}
  for r in rows:
    merged.setdefault(r["dialogue"], []).append(r)
  return [{"dialogue": d, "relations": rel} for d, rel in merged.items()]


def _dialogue_block(d: dict) -> str:
  pairs = [str((r["subject_entity"], r["object_entity"])) for r in d["relations"]]
  rels = [r["relation"] for r in d["relations"]]
  return (f"Dialogue: \n{d['dialogue']}\nThe list of {len(pairs)} entity pairs are {', '.join(pairs)}\n"
          f"The {len(rels)} respective relations between each entity pair are: {', '.join(rels)}\n")


def dialogue_re_examples(spec: SampleSpec) -> list[Example]:
  """DialogRE test dialogues after merged demonstrations."""
  train = read_json(resolve(spec.data_path, "train_dialogueRE_processed.json", "LongICLBench DialogRE"))
  test = read_json(resolve(spec.data_path, "test_dialogueRE.json", "LongICLBench DialogRE"))
  inst = ("Given the dialogue, please find the name pair entities in the dialogue and their corresponding relation "
          "types in the strict format of given examples as following (note that the number of entities has to "
          "strictly have the same value as the number of respective relation):\n")
  demo_of = lambda n: inst + "".join(_dialogue_block(d) for d in _merge_dialogues(train[:n]))  # noqa: E731
  shots = _shots(spec, DIALOGUE_ROUND_SHOTS, demo_of, len(train))
  demo = demo_of(shots)
  out = []
  for i, row in enumerate(limit(test, spec.num_samples)):
    pairs = [str((r["subject_entity"], r["object_entity"])) for r in row["relations"]]
    prompt = (demo + "Dialogue: \n" + row["dialogue"] + "\n" + f"The list of {len(pairs)} entity pairs are "
              + ", ".join(pairs) + "\n" + f"The {len(pairs)} respective relations between each entity pair are: ")
    out.append(Example(id=str(i), prompt=prompt, reference={"dialogue": row["dialogue"],
                                                            "relations": [r["relation"] for r in row["relations"]]},
                       meta={"shots": shots}))
  return out


def label_examples(spec: SampleSpec) -> list[Example]:
  """Banking77-style classification: round-robin demonstrations over labels (`select_data`), EM of the label."""
  labels = read_json(resolve(spec.data_path, "labels.json", "LongICLBench classification"))
  train = read_jsonl(resolve(spec.data_path, "train.jsonl", "LongICLBench classification"), spec.problems)
  test = read_jsonl(resolve(spec.data_path, "test.jsonl", "LongICLBench classification"), spec.problems)
  by_label: dict[int, list] = {}
  for r in train:
    by_label.setdefault(r["label"], []).append(r)
  rounds = int(spec.options.get("round", 1))
  demos = [by_label[k][t] for t in range(rounds) for k in by_label if t < len(by_label[k])]
  head = ("Given a customer service query, please predict the intent of the query. The predict answer must come "
          "from the demonstration examples with the exact format. The examples are as follows: \n")
  demo = head + "".join(f"service query: {d['text']}\nintent category: {labels[d['label']]}\n" for d in demos)
  return [Example(id=str(i), prompt=demo + f"service query: {r['text']}\nintent category: ",
                  reference=labels[r["label"]], metric_kwargs={"text": r["text"]})
          for i, r in enumerate(limit(test, spec.num_samples))]
