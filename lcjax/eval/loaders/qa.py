"""Loaders of the QA-style benchmarks whose format is one long input per record: LooGLE, M4LE and SCBench.

- LooGLE (bigai-nlco/LooGLE `LooGLE-testdata/<task>.jsonl`): {"input", "title", "qa_pairs", "output"}; qa_pairs is a
  Python literal list of {"Q", "A", "S", ...} or "none" (summarisation, answer in "output"). Prompts and output
  budgets are `config/task2prompt.json` / `task2maxlen.json`; middle truncation as in `pred_opensource_models.py`.
- M4LE (wckwan/M4LE): {"instruction", "input", "answers", "length_bucket", "dialog_id", "turn_i"}; prompt is
  instruction + "\\n" + input; `inference.py` sets max_new_tokens to the length bucket (kept on purpose).
- SCBench (microsoft/SCBench `data/<task>.jsonl`): {"id", "context", "multi_turns": [{"input", "answer", ...}]};
  each turn becomes an example whose chat history holds the first turn's full prompt and the *gold* answers of the
  previous turns (SCBench's golden-context multi-turn mode). References are the labels the official pipeline builds
  (`official_label`: choice_eng [answer, letter], qa_eng [answer], others the raw answer).
"""

from __future__ import annotations

import re

from lcjax.eval.loaders.common import limit, literal_list, read_jsonl, require, resolve
from lcjax.eval.metrics.scbench import MIXED, official_label
from lcjax.eval.task import Example, SampleSpec

LOOGLE_PROMPTS = {
    "shortdep_qa": "Please answer the question based on the long texts below. \n{input}\nQuestion: {Q}\nAnswer: ",
    "longdep_qa": "Please answer the question based on the long texts below. \n{input}\nQuestion: {Q}\nAnswer: ",
    "longdep_summarization": "Please generate a summary of the below paper. \n{input}\n Summarization: ",
    "shortdep_cloze": ("Please fill in the clozes based on the given long texts below. Each of the placeholder "
                       "'<mask-n>' in the question could be an entity of Person, Location or Organiocation. The same "
                       "masks represent the same entity. Output a json format answer, for example: {{'<mask-0>': "
                       "'Bob', '<mask-1>': 'Gorrosion Magazine','<mask-2>': 'Bethel Horizon'}}\n{input}\n Question: "
                       "{Q} What are the masked entities? \nAnswer:"),
}
LOOGLE_MAXLEN = {"shortdep_qa": 300, "longdep_qa": 500, "longdep_summarization": 500, "shortdep_cloze": 50}


def loogle_examples(spec: SampleSpec, task: str) -> list[Example]:
  """One example per QA pair (or per document for summarisation)."""
  path = resolve(spec.data_path, f"{task}.jsonl", f"LooGLE {task}")
  out = []
  for d, row in enumerate(read_jsonl(path, spec.problems)):
    require(row, ("input", "qa_pairs"), f"{path} record {d}")
    if row["qa_pairs"] == "none":
      out.append(Example(id=f"{d}", prompt=LOOGLE_PROMPTS[task].format(input=row["input"]),
                         reference=row["output"], meta={"title": row.get("title")}))
      continue
    for q, pair in enumerate(literal_list(row["qa_pairs"])):
      out.append(Example(id=f"{d}-{q}", prompt=LOOGLE_PROMPTS[task].format(input=row["input"], Q=pair["Q"]),
                         reference=pair["A"], meta={"title": row.get("title"), "type": pair.get("type")}))
  return limit(out, spec.num_samples)


def m4le_examples(spec: SampleSpec, task: str) -> list[Example]:
  """M4LE records of `task` (file `<task>.jsonl`)."""
  path = resolve(spec.data_path, f"{task}.jsonl", f"M4LE {task}")
  out = []
  for i, row in enumerate(limit(read_jsonl(path, spec.problems), spec.num_samples)):
    require(row, ("instruction", "input", "answers", "length_bucket"), f"{path} record {i}")
    out.append(Example(id=f"{row.get('dialog_id', i)}-{row.get('turn_i', 0)}",
                       prompt=row["instruction"] + "\n" + row["input"], reference=row["answers"],
                       max_new_tokens=int(row["length_bucket"]), metric_kwargs={"bucket": row["length_bucket"]},
                       meta={"length_bucket": row["length_bucket"]}))
  return out


SCBENCH_FIRST = {
    "scbench_passkey": "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information.\n\n{context}\n\n{input}",  # noqa: E501
    "scbench_kv": "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n{input}",  # noqa: E501
    "scbench_kv_hard": "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n{input}",  # noqa: E501
    "scbench_choice_eng": "Read the book and answer the question.\n\n{context}\n\nQuestion: {question}\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\nThe the correct answer is",  # noqa: E501
    "scbench_qa_eng": "Read the book and answer the question. Be very concise in your answer.\n\n{context}\n\nQuestion: {question}\nAnswer:",  # noqa: E501
    "scbench_qa_chn": "阅读以下书籍然后回答问题。\n\n{context}\n\n问题：{question}\n答案：",
    "scbench_mf": "{prefix}\n\n{context}\n\n{input}",
    "scbench_vt": "{context}\n\n{input}", "scbench_many_shot": "{context}\n\n{input}",
    "scbench_hashhop": "{context}\n\n{input}", "scbench_prefix_suffix": "{context}\n\n{input}",
    "scbench_repoqa": "Based on the function description and code context, please retrieve and repeat the exact described function from the code context in a code block wrapped by ```:\n\n{context}\n\n{input}",  # noqa: E501
    "scbench_summary": "{context}\n\n{input}", "scbench_summary_with_needles": "{context}\n\n{input}",
    "scbench_repoqa_and_kv": "{context}\n\n{input}",
}
SCBENCH_FOLLOW = {
    "scbench_choice_eng": "Question: {question}\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\nThe the correct answer is",  # noqa: E501
    "scbench_qa_eng": "Question: {question}\nAnswer:", "scbench_qa_chn": "问题：{question}\n答案：",
    "scbench_mf": "{prefix}\n\n{input}",
}
SCBENCH_MAXLEN = {"scbench_choice_eng": 40, "scbench_qa_eng": 40, "scbench_qa_chn": 40, "scbench_kv": 150,
                  "scbench_kv_hard": 150, "scbench_mf": 5, "scbench_hashhop": 150, "scbench_prefix_suffix": 150,
                  "scbench_passkey": 15, "scbench_vt": 30, "scbench_many_shot": 10, "scbench_repoqa": 1024,
                  "scbench_summary": 200, "scbench_summary_with_needles": 800, "scbench_repoqa_and_kv": 1024}
# the mixed tasks' per-subtask budgets (`DATA_NAME_TO_MAX_NEW_TOKENS`)
SCBENCH_SUB_MAXLEN = {"scbench_summary": 800, "scbench_passkey": 15, "scbench_repoqa": 1024, "scbench_kv": 80}


def _turn_fields(turn: dict) -> dict:
  fields = {"input": turn["input"], "question": turn["input"]}
  for letter, option in zip("ABCD", turn.get("options") or []):
    fields[f"OPTION_{letter}"] = option
  match = re.findall(r"The .+ is", turn["input"])
  fields["prefix"] = f"What is {match[0].lower()[:-3]}?" if match else ""
  return fields


def _repo_needles(rows: list[dict]) -> dict[str, list[dict]]:
  """`needle_by_repo`: every RepoQA turn's {"needle": answer, "name": function name}, grouped by repository."""
  needles: dict[str, list[dict]] = {}
  for row in rows:
    for turn in row["multi_turns"]:
      if "name" in turn and turn.get("task", "scbench_repoqa") == "scbench_repoqa":
        needles.setdefault(row.get("repo"), []).append({"needle": turn["answer"], "name": turn["name"]})
  return needles


def _turn_kwargs(task: str, row: dict, turn: dict, t: int, needles: dict) -> tuple[dict, int | None]:
  """(metric kwargs, per-example max_new_tokens) of one turn; mixed tasks score with the turn's subtask."""
  sub = turn.get("task", task) if task in MIXED else task
  kwargs = {"task": sub, "turn": t}
  if sub == "scbench_repoqa":
    kwargs.update(lang=row.get("lang"), func_name=turn.get("name"), needles=needles.get(row.get("repo"), []))
  return kwargs, (SCBENCH_SUB_MAXLEN[sub] if task in MIXED else None)


def scbench_examples(spec: SampleSpec, task: str) -> list[Example]:
  """One example per turn, with the previous turns (gold answers) as chat history."""
  path = resolve(spec.data_path, f"{task}.jsonl", f"SCBench {task}")
  rows = read_jsonl(path, spec.problems)
  for d, row in enumerate(rows):
    require(row, ("multi_turns",), f"{path} record {d}")
  needles = _repo_needles(rows) if "repoqa" in task else {}
  out = []
  for d, row in enumerate(rows):
    context = row.get("context", row.get("input", ""))
    history: list[dict] = []
    for t, turn in enumerate(row["multi_turns"]):
      fields = _turn_fields(turn)
      text = (SCBENCH_FIRST[task].format(context=context, **fields) if t == 0
              else SCBENCH_FOLLOW.get(task, "{input}").format(**fields))
      kwargs, budget = _turn_kwargs(task, row, turn, t, needles)
      out.append(Example(id=f"{row.get('id', d)}-{t}", prompt=text, reference=official_label(turn, kwargs["task"]),
                         history=tuple(history), metric_kwargs=kwargs, meta={"turn": t}, max_new_tokens=budget))
      history = history + [{"role": "user", "content": text}, {"role": "assistant", "content": str(turn["answer"])}]
  return limit(out, spec.num_samples)
