"""Copies the small real evaluation/training data subsets the tests and `runlocal` configs read into
`lcjax/assets/data/` (a few MB, shipped with the repository and the package).

  python scripts/vendor_data.py SRC      # SRC: a folder laid out like the official data (one folder per benchmark,
                                         # each with its SOURCE file)

Whole files are kept where a test checks a whole-file number (L-Eval tpo: 269 questions; the prediction files'
official scores); the others are cut to their first records (LongProc, LongICLBench test sets, LooGLE). The SOURCE
file of each folder is copied and a LICENSE note is written beside it. Point `LCJAX_DATA_DIR` at the full official
data for real runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

DEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lcjax", "assets", "data")

WHOLE = [
    "gsm8k/test.jsonl",
    "leval/Closed-ended-tasks/tpo.jsonl",
    "leval/Closed-ended-tasks/sci_fi.jsonl",
    "leval/Open-ended-tasks/financial_qa.jsonl",
    "leval/predictions/exam_eval_Claude-100k_topic_retrieval_longchat.pred.jsonl",
    "leval/predictions/exam_eval_gpt4-32k_codeU.pred.jsonl",
    "leval/predictions/exam_eval_gpt4-32k_quality.pred.jsonl",
    "leval/predictions/exam_eval_turbo-16k-0613_tpo.pred.jsonl",
    "leval/predictions/ngram_eval_turbo-16k-0613_financial_qa.pred.jsonl",
    "longiclbench/fewnerd_train_10turns.json",
    "longiclbench/id2fine_tags.json",
] + [f"longproc/{t}/prompts.yaml" for t in ("countdown", "html_to_tsv", "path_traversal", "pseudo_to_code",
                                             "tom_tracking")]
JSONL_HEAD = {"leval/Closed-ended-tasks/coursera.jsonl": 3, "loogle/longdep_qa.jsonl": 2,
              "loogle/shortdep_cloze.jsonl": 2, "loogle/longdep_summarization.jsonl": 2}
JSON_HEAD = {"longiclbench/fewnerd_test_1800.json": 20, "longiclbench/test_dialogueRE.json": 10,
             "longproc/countdown/countdown_0.5k.json": 5, "longproc/html_to_tsv/html_to_tsv_0.5k.json": 5,
             "longproc/path_traversal/path_traversal_0.5k.json": 5,
             "longproc/pseudo_to_code/pseudo_to_code_0.5k.json": 5, "longproc/tom_tracking/tom_tracking_0.5k.json": 5}
LICENSES = {
    "gsm8k": "MIT (openai/grade-school-math LICENSE).",
    "leval": "GPL-3.0 (OpenLMLab/LEval LICENSE). The task files' documents keep their original sources' terms "
             "(TOEFL-QA, Coursera, SFiction, earnings calls); see the L-Eval README.",
    "longiclbench": "MIT (TIGER-AI-Lab/LongICLBench LICENSE). Few-NERD and DialogRE keep their own terms.",
    "longproc": "The repository carries no LICENSE file at this commit; redistributed here as a small research "
                "evaluation subset with attribution (cite Ye et al. 2025, LongProc).",
    "loogle": "MIT (bigai-nlco/LooGLE LICENSE).",
}


def _copy(src: str, rel: str, text: str | None = None) -> None:
  out = os.path.join(DEST, rel)
  os.makedirs(os.path.dirname(out), exist_ok=True)
  if text is None:
    shutil.copyfile(os.path.join(src, rel), out)
  else:
    with open(out, "w", encoding="utf-8") as f:
      f.write(text)


def main(src: str) -> None:
  for rel in WHOLE:
    _copy(src, rel)
  for rel, n in JSONL_HEAD.items():
    with open(os.path.join(src, rel), encoding="utf-8") as f:
      _copy(src, rel, "".join(f.readlines()[:n]))
  for rel, n in JSON_HEAD.items():
    with open(os.path.join(src, rel), encoding="utf-8") as f:
      rows = json.load(f)[:n]
    _copy(src, rel, json.dumps(rows, ensure_ascii=False))
    for row in rows:  # LongProc html_to_tsv: the pages its first rows read
      if "html_path" in row:
        _copy(src, os.path.join(os.path.dirname(rel), row["html_path"]))
  for name, licence in LICENSES.items():
    _copy(src, f"{name}/SOURCE")
    _copy(src, f"{name}/LICENSE", licence + "\n")


if __name__ == "__main__":
  main(sys.argv[1])
