"""L-Eval loader (OpenLMLab/LEval `LEval-data/{Closed,Open}-ended-tasks/<task>.jsonl`, `Baselines/*-test.py`).

Each record holds one long document (`input`) and several `instructions` with their `outputs` (JSON lists or, in
the released files, Python list literals) and an `evaluation` kind (exam / f1 / rouge / LLM / human). Each
instruction becomes one example; records whose evaluation is LLM or human are skipped as `auto_eval.py` skips
them. Prompts follow the Llama-2-chat baseline: the task's system prompt, then "Document is as follows. {document}
..." with the exam suffix, the GSM/CodeU/topic special forms, or "Answer this question with N words." for open
tasks; the document is truncated by L-Eval's word rule to the model's input budget. Sci-fi examples carry the
document-free factuality question as a `companion` prompt (its answer is appended as " [fact: ...]"); topic
retrieval examples carry their question position (1st/2nd/3rd topic) for the per-position average. The option
`em_version` ("current" or "2023-08") selects the exam EM version.
"""

from __future__ import annotations

from lcjax.eval.loaders.common import limit, literal_list, read_jsonl, require, resolve
from lcjax.eval.task import Example, SampleSpec

CLOSED = ("coursera", "quality", "topic_retrieval_longchat", "tpo", "gsm100", "codeU", "sci_fi")
OPEN = ("financial_qa", "gov_report_summ", "legal_contract_qa", "meeting_summ", "multidoc_qa", "narrative_qa",
        "natural_question", "news_summ", "paper_assistant", "patent_summ", "review_summ", "scientific_qa",
        "tv_show_summ")
AUTO_METRICS = ("exam", "f1", "rouge")


def system_prompt(task: str, exam: bool) -> str:
  """`get_sys_prompt` of L-Eval's baselines."""
  if "gsm" in task:
    return ("Given several question answer pairs, you need to follow a similar format to answer the last question. "
            "Make sure the response is end with The answer is _ . ")
  if "topic" in task:
    return ("Below is a record of our previous conversation on many different topics. You are the ASSISTANT, and I "
            "am the USER. At the beginning of each topic, the USER will say 'I would like to discuss the topic of "
            "<TOPIC>'. Memorize each <TOPIC>. At the end of the record, I will ask you to retrieve the "
            "first/second/third topic names. Now the record start. ")
  if "coursera" in task:
    return ("Now you are given a very long document. Please follow the instruction based on this document. For "
            "multi-choice questions, there could be a sinlge correct option or multiple correct options. Please only "
            "provide the letter corresponding to the answer (like A or AB) when answering. ")
  if "codeU" in task:
    return ("Now you are given a code base consisting of a large amount of functions and the corresponding "
            "comments. In the end, I will call some functions defined in the code base. Please carefully read these "
            "codes and comments and answer the question.")
  if "sci_fi" in task:
    return ("Now you are given a scientific fiction. I will ask you some questions and the answer should be \"True\" "
            "or \"False\". Notice that you should answer the question based on the evidence in the document instead "
            "of your background knowledge.")
  if exam:
    return ("Now you are given a very long document. Please follow the instruction based on this document. For "
            "multi-choice questions, there is only a sinlge correct option. Please only provide the letter "
            "corresponding to the answer (like A or B) when answering. For other questions, please directly give the "
            "concise and accurate answer. ")
  return ("Now you are given a very long document. Please follow the instruction after this document. These "
          "instructions may include summarizing a document, answering questions based on the document, or writing a "
          "required paragraph. ")


def _prompt(task: str, inst: str, out: str, exam: bool) -> tuple[str, str]:
  """(user message with a {document} slot, answer prefix)."""
  sys = system_prompt(task, exam)
  if "gsm" in task or "codeU" in task or "topic" in task:
    return sys + "{document}" + "\n\n" + inst, ""
  if exam:
    return (sys + "Document is as follows. {document} \nQuestion: " + inst +
            ".  Please directly give answer without any additonal output or explanation ", "\nAnswer:")
  return sys + "Document is as follows. {document} Instruction: " + inst + \
      f" \nAnswer this question with {len(out.split())} words.", ""


def _fact_run(inst: str) -> dict:
  """Sci-fi's second, document-free question (`llama2-chat-test.py`), appended to the prediction as " [fact: ...]"."""
  text = inst.replace("based on the world described in the document.",
                      "based on the real-world knowledge and facts up until your last training")
  text += "Please directly answer without any additional output or explanation. \nAnswer:"
  return {"companion": Example(id="fact", prompt=text, reference=None), "companion_format": " [fact: {}]"}


def leval_examples(spec: SampleSpec, task: str) -> list[Example]:
  """One example per (document, instruction) with an automatic metric."""
  folder = "Closed-ended-tasks" if task in CLOSED else "Open-ended-tasks"
  path = resolve(spec.data_path, f"{folder}/{task}.jsonl", f"L-Eval {task}")
  out = []
  for d, row in enumerate(read_jsonl(path, spec.problems)):
    require(row, ("instructions", "outputs", "input", "evaluation"), f"{path} record {d}")
    if row["evaluation"] not in AUTO_METRICS:
      continue
    for q, (inst, gold) in enumerate(zip(literal_list(row["instructions"]), literal_list(row["outputs"]))):
      prompt, prefix = _prompt(task, inst, gold, row["evaluation"] == "exam")
      kwargs = {"coursera": task == "coursera", **({"position": q % 3} if "topic" in task else {}),
                **({"em_version": spec.options["em_version"]} if "em_version" in spec.options else {})}
      out.append(Example(id=f"{d}-{q}", prompt=prompt, document=row["input"], reference=[gold],
                         answer_prefix=prefix, metric_kwargs=kwargs,
                         meta={"evaluation": row["evaluation"], "source": row.get("source")},
                         **(_fact_run(inst) if task == "sci_fi" else {})))
  return limit(out, spec.num_samples)
