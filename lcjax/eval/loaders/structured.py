"""Loaders of L-CiteEval, LongProc and LoCoV1.

- L-CiteEval (ZetangForward/L-CITEEVAL `data/L-CiteEval/<exp>/<task>.json` + `prompt/<task>_default.json`): a JSON
  list of {"id", "question", "answer", "docs", "length"}; the prompt is the one-shot demo and the sample built by
  `make_demo` ("Passage [k]: ..." documents, instruction, question, "Answer:").
- LongProc (princeton-pli/LongProc `data/<task>/<task>_<len>.json` + `prompts.yaml`): the USER_PROMPT template
  filled as `longproc_data.py` does; countdown's gold procedure is rebuilt by the official search
  (`build_countdown_demonstration`), html_to_tsv reads the page from `html_path`.
- LoCoV1 (hazyresearch/LoCoV1-{Queries,Documents}): queries {"qid", "query", "answer_pids", "dataset"} and
  documents {"pid", "passage", "dataset"}; for a causal LM the retrieval is listwise: the passages of the query's
  subset (truncated to fit) are numbered and the model ranks them; NDCG@10 against answer_pids.
"""

from __future__ import annotations

import os

from lcjax.eval.loaders.common import limit, read_json, read_jsonl, require, resolve
from lcjax.eval.metrics.longproc import build_countdown_demonstration
from lcjax.eval.task import Example, SampleSpec


def make_doc_prompt(doc, doc_id: int, doc_prompt: str) -> str:
  """`make_doc_prompt`: "{P}" <- passage text (title stripped for dict docs), "{ID}" <- doc_id + 1."""
  if isinstance(doc, dict):
    text = doc["text"].strip("\n")
    if "title" in doc and text[:len(doc["title"]) + 1] == doc["title"] + "\n":
      text = text[len(doc["title"]) + 1:]
  else:
    text = doc
  return doc_prompt.replace("{P}", text).replace("{ID}", str(doc_id + 1))


def make_demo(item: dict, prompt: dict, test: bool) -> str:
  """`make_demo` for the default prompt files (all documents, instruction, question, answer unless `test`)."""
  text = prompt["demo_prompt"].replace("{INST}", prompt["instruction"])
  if "{Q}" in text:
    text = text.replace("{Q}", item.get("question") or "")
  docs = "".join(make_doc_prompt(d, i, prompt["doc_prompt"]) for i, d in enumerate(item["docs"][:1500]))
  text = text.replace("{D}", docs)
  if test:
    return text.replace("{A}", "").rstrip()
  answer = "\n" + "\n".join(item["answer"]) if isinstance(item["answer"], list) else item["answer"]
  return text.replace("{A}", "").rstrip() + answer


def citeeval_examples(spec: SampleSpec, task: str) -> list[Example]:
  """L-CiteEval examples with the official one-shot prompt."""
  data = read_json(resolve(spec.data_path, f"{task}.json", f"L-CiteEval {task}"))
  prompt = read_json(resolve(spec.data_path, f"prompt/{task}_default.json", f"L-CiteEval {task} prompt"))
  head = make_demo(prompt["demos"][0], prompt, test=False) + prompt["demo_sep"]
  out = []
  for i, item in enumerate(limit(data, spec.num_samples)):
    require(item, ("answer", "docs"), f"L-CiteEval {task} record {i}")
    out.append(Example(id=str(item.get("id", i)), prompt=head + make_demo(item, prompt, test=True),
                       reference={"answer": item["answer"], "docs": item["docs"]},
                       meta={"length": item.get("length")}))
  return out


COUNTDOWN_DEMOS = (([40, 19, 23, 7], 29), ([9, 16, 6, 18], 12))
LONGPROC_MAXLEN = {"0.5k": 1024, "2k": 3072, "8k": 10240}


def _yaml_prompt(folder: str) -> str:
  import yaml

  with open(resolve(folder, "prompts.yaml", "LongProc prompts"), encoding="utf-8") as f:
    return yaml.safe_load(f)["USER_PROMPT"]


def longproc_examples(spec: SampleSpec, task: str, size: str = "0.5k") -> list[Example]:
  """LongProc `<task>_<size>` examples (prompt, reference) per `longproc_data.py`."""
  folder = os.path.dirname(resolve(spec.data_path, f"{task}/{task}_{size}.json", f"LongProc {task}"))
  data = limit(read_json(os.path.join(folder, f"{task}_{size}.json")), spec.num_samples)
  template = _yaml_prompt(folder)
  out = []
  for i, d in enumerate(data):
    if task == "path_traversal":
      fields = {"city_context": d["context_nl"], "src_city": d["question_repr"][0], "dst_city": d["question_repr"][1]}
      ref = d["answer_nl"]
    elif task == "tom_tracking":
      fields = {k: d[k] for k in ("story_components", "story", "question")}
      ref = d["solution"]
    elif task == "countdown":
      shots = "\n\n".join(f"# Example\nNumbers: {nums}\nTarget: {t}\n\n{build_countdown_demonstration(nums, t)[1]}"
                          for nums, t in COUNTDOWN_DEMOS)
      fields = {"demonstration": shots, "nums": d["nums"], "target": d["target"]}
      ref = {"nums": d["nums"], "target": d["target"],
             "reference_output": build_countdown_demonstration(list(d["nums"]), d["target"])[1]}
    elif task == "html_to_tsv":
      with open(os.path.join(folder, d["html_path"]), encoding="utf-8") as f:
        html = f.read()
      fields = {"html_str": html, "task_topic": d["task_topic"], "task_description": d["task_description"],
                "tsv_header": d["tsv_header"], "filtering_instruction": d["filtering_instruction"]}
      ref = d["gt"]
    elif task == "pseudo_to_code":
      fields = {"pseudocode": "\n".join(d["pseudocode_lines"])}
      ref = d["testcases"]
    else:
      raise KeyError(task)
    out.append(Example(id=str(i), prompt=template.format(**fields), reference=ref,
                       max_new_tokens=LONGPROC_MAXLEN.get(size)))
  return out


LOCO_PROMPT = ("Below are {n} numbered passages and a query. Rank the passages by how well they answer the query, "
               "most relevant first.\n\n{passages}\n\nQuery: {query}\nAnswer with the passage numbers in ranked "
               "order, separated by \" > \" (for example: [3] > [1] > [2]).")


def loco_examples(spec: SampleSpec, subset: str | None = None, passage_words: int = 200) -> list[Example]:
  """LoCoV1 listwise-ranking examples: each query against the passages of its subset (each cut to
  `passage_words` words); the reference maps passage ids to relevance."""
  queries = read_jsonl(resolve(spec.data_path, "queries.jsonl", "LoCoV1 queries"), spec.problems)
  docs = read_jsonl(resolve(spec.data_path, "documents.jsonl", "LoCoV1 documents"), spec.problems)
  out = []
  for q in limit([q for q in queries if subset in (None, q.get("dataset"))], spec.num_samples):
    require(q, ("qid", "query", "answer_pids"), "LoCoV1 query")
    pool = [d for d in docs if d.get("dataset") == q.get("dataset")]
    passages = "\n\n".join(f"[{i + 1}] " + " ".join(d["passage"].split()[:passage_words]) for i, d in enumerate(pool))
    out.append(Example(id=str(q["qid"]), prompt=LOCO_PROMPT.format(n=len(pool), passages=passages, query=q["query"]),
                       reference={pid: 1 for pid in q["answer_pids"]},
                       metric_kwargs={"pids": [d["pid"] for d in pool]}))
  return out
