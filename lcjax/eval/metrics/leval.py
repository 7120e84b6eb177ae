"""L-Eval official metrics (OpenLMLab/LEval `Evaluation/auto_eval.py`, `em.py`, and the SCROLLS `f1.py`/`rouge.py`
it imports), reproduced with their quirks.

- Exam EM (`em.py`): the normalisation does *not* lowercase; a gold made only of the letters A-D is an option answer:
  exact match scores 1, a prediction whose letters are a subset of the gold's scores 0.25 (partial credit for
  multi-answer Coursera questions); other golds score 1 on float equality or when the gold (spaces removed,
  lowercased) is a substring of the first line longer than one character of the prediction. Reported as
  100 * mean.
- `process_output_mc`: an empty response becomes "None"; a response that is a *substring* of "ABCD" is kept as
  is; otherwise (non-Coursera) the first of A/B/C/D anywhere in the response; Coursera collects the leading option
  letters, then letters before ")"/"."/space, and guesses "A" if nothing is found.
- F1 task: SQuAD token F1, max over references, 100 * mean.
- ROUGE task: Google rouge-score (no stemmer) F-measures of rouge1/2/L, max over references, averaged, and the
  L-Eval score is their geometric mean. The official text post-processing (NLTK sentence split joined by newlines)
  only affects rougeLsum, which the score does not use, so it is not reproduced (it would need NLTK data).
- Every metric is rounded to 4 decimals, as `LEvalMetrics._compute` does.
"""

from __future__ import annotations

import re
from typing import Sequence

from lcjax.eval.metrics.base import mean_raw, register
from lcjax.eval.metrics.text import google_rouge, normalize_answer, qa_f1

WITH_OPTION_TASKS = ("coursera", "quality", "tpo")


def exact_match_score(prediction: str, ground_truth: str) -> float:
  """L-Eval's per-reference exam score: 1, 0.25 (option subset) or 0."""
  gold = normalize_answer(ground_truth, lower=False)
  if all(ch in "ABCD" for ch in gold):
    pred = normalize_answer(prediction, lower=False)
    if pred == gold:
      return 1
    return 0.25 if set(pred).issubset(set(gold)) else 0
  try:
    return int(float(prediction) == float(ground_truth))
  except ValueError:
    for line in prediction.split("\n"):
      if len(line) > 1:
        prediction = line
        break
    return int(ground_truth.lower().replace(" ", "") in prediction.lower().replace(" ", ""))


def exam_em(prediction: str, references) -> float:
  """Max exam score over the references, on L-Eval's 0..100 scale."""
  refs = [references] if isinstance(references, str) else references
  return 100.0 * max(exact_match_score(prediction, r) for r in refs)


def compute_exact_match(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
  """100 * mean of the max-over-references exam score."""
  return 100.0 * sum(max(exact_match_score(p, r) for r in refs)
                     for p, refs in zip(predictions, references)) / len(predictions)


def process_output_mc(response: str, coursera: bool = False) -> str:
  """The option letter(s) L-Eval reads from a multiple-choice response (see module docstring)."""
  if len(response.strip()) == 0:
    return "None"
  if response in "ABCD":
    return response
  if not coursera:
    for ch in response:
      if ch in "ABCD":
        return ch
  cleaned = ""
  for ch in response:
    if ch in "ABCD":
      cleaned += ch
      response = response[1:]
    else:
      break
  if len(cleaned) > 1:
    return "".join(sorted(set(cleaned)))
  response = response.split("Question")[0]
  cleaned += " ".join(re.findall(r"\s*[A-Z](?=[\s.)])", response)).strip()
  cleaned = "".join(sorted(set(re.sub(r"[^A-D]", "", cleaned))))
  if len(cleaned) < 1:
    found = False
    for ch in response:
      if ch in "ABCD":
        cleaned += ch
        response = response[1:]
        found = True
      elif found:
        break
  return cleaned if cleaned else "A"


def process_gt_mc(response: str) -> str:
  """The gold option letters: A-D of the first whitespace token ("(B) text" -> "B"); "A" if none."""
  cleaned = re.sub(r"[^A-D]", "", response.split()[0])
  return cleaned if cleaned else "A"


def process_math(response: str) -> str:
  """GSM answer: digits of "The answer is X" (up to a "."), else of the last number-bearing word of the first
  paragraph."""
  match = re.search(r"The answer is (\S+)", response)
  if match:
    ret = match.group(1)
  else:
    ret = ""
    for word in response.split("\n\n")[0].split(" ")[::-1]:
      if any(ch.isdigit() for ch in word):
        ret = word
        break
  digits = ""
  for ch in ret:
    if ch.isdigit():
      digits += ch
    if ch == ".":
      break
  return digits


def scrolls_f1(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
  """SCROLLS `compute_f1`: 100 * mean of max-over-references SQuAD F1."""
  return 100.0 * sum(max(qa_f1(p, r) for r in refs) for p, refs in zip(predictions, references)) / len(predictions)


def rouge_example(prediction: str, references) -> dict:
  """rouge1/rouge2/rougeL F-measures (x100) of one prediction, each maxed over the references."""
  refs = [references] if isinstance(references, str) else references
  scores = [google_rouge(r, prediction) for r in refs]
  return {k: max(s[k].fmeasure for s in scores) * 100 for k in ("rouge1", "rouge2", "rougeL")}


def rouge_aggregate(rows: Sequence[dict]) -> dict:
  """Mean of each ROUGE over examples, then L-Eval's score: their geometric mean (rounded to 4 decimals)."""
  means = {k: sum(r[k] for r in rows) / len(rows) for k in ("rouge1", "rouge2", "rougeL")}
  geo = (means["rouge1"] * means["rouge2"] * means["rougeL"]) ** (1.0 / 3.0)
  out = {f"rouge/{k}": round(v, 4) for k, v in means.items()}
  out.update({"score": round(geo, 4), "rouge/geometric_mean": round(geo, 4), "n": len(rows)})
  return out


def score_prediction_file(rows: Sequence[dict], file_name: str) -> dict:
  """Scores an L-Eval `*.pred.jsonl` the way `auto_eval.py --pred_file file_name` does.

  Args:
    rows: the file's records (`gt`, `evaluation`, and a `*_pred` key).
    file_name: the prediction file's name or path; the official script routes by substrings of it.
  Returns:
    {"metric": "exam"|"f1"|"rouge", "score": the LEval_score, ...}.
  """
  key = next(k for k in rows[0] if "_pred" in k)
  rows = [r for r in rows if r["evaluation"] in ("f1", "rouge", "exam")]
  config = rows[-1]["evaluation"]
  options = any(task in file_name for task in WITH_OPTION_TASKS)
  if options:
    preds = [process_output_mc(r[key], coursera="coursera" in file_name) for r in rows]
    refs = [[process_gt_mc(r["gt"])] for r in rows]
  elif "gsm" in file_name:
    preds = [process_math(r[key]) for r in rows]
    refs = [[process_math(r["gt"])] for r in rows]
  else:
    preds = [r[key] for r in rows]
    refs = [[r["gt"]] for r in rows]
  if config == "exam":
    return {"metric": "exam", "score": round(compute_exact_match(preds, refs), 4), "n": len(rows)}
  if config == "f1":
    return {"metric": "f1", "score": round(scrolls_f1(preds, refs), 4), "n": len(rows)}
  return {"metric": "rouge", **rouge_aggregate([rouge_example(p, r) for p, r in zip(preds, refs)])}


def judge_loyalty(text: str) -> str:
  """Sci-fi loyalty answer: "true"/"false" from the first lowercased word containing it, else "<error>"
  (`process_output_judge`'s first half; the gold's part before "[fact:")."""
  for word in text.lower().split("[fact:")[0].split():
    if "true" in word:
      return "true"
    if "false" in word:
      return "false"
  return "<error>"


def _sci_fi(prediction: str, references, **kwargs) -> float:
  """L-Eval sci_fi loyalty EM (0..100): the judged True/False vs the gold before "[fact:"."""
  refs = [references] if isinstance(references, str) else references
  return exam_em(judge_loyalty(prediction), [r.lower().split("[fact:")[0].strip() for r in refs])


def _exam_options(prediction: str, references, coursera: bool = False, **kwargs) -> float:
  """L-Eval exam EM for option questions: letters from process_output_mc vs process_gt_mc (0..100)."""
  refs = [references] if isinstance(references, str) else references
  return exam_em(process_output_mc(prediction, coursera), [process_gt_mc(r) for r in refs])


def _exam_math(prediction: str, references, **kwargs) -> float:
  """L-Eval GSM100 exam EM on process_math digits (0..100)."""
  refs = [references] if isinstance(references, str) else references
  return exam_em(process_math(prediction), [process_math(r) for r in refs])


def _exam_plain(prediction: str, references, **kwargs) -> float:
  """L-Eval exam EM on raw text (topic retrieval and other closed-ended tasks, 0..100)."""
  return exam_em(prediction, references)


def _f1(prediction: str, references, **kwargs) -> float:
  """L-Eval / SCROLLS token F1 (0..100), max over references."""
  refs = [references] if isinstance(references, str) else references
  return 100.0 * max(qa_f1(prediction, r) for r in refs)


def _rouge(prediction: str, references, **kwargs) -> dict:
  """L-Eval ROUGE (rouge-score, no stemmer); corpus score is the geometric mean of R-1/R-2/R-L."""
  out = rouge_example(prediction, references)
  return {"score": (out["rouge1"] * out["rouge2"] * out["rougeL"]) ** (1 / 3), **out}


def _round4(rows):
  out = mean_raw(rows)
  out["score"] = round(out["score"], 4)
  return out


register("leval.exam_options", _exam_options, aggregate=_round4)
register("leval.exam_math", _exam_math, aggregate=_round4)
register("leval.exam", _exam_plain, aggregate=_round4)
register("leval.sci_fi_loyalty", _sci_fi, aggregate=_round4)
register("leval.f1", _f1, aggregate=_round4)
register("leval.rouge", _rouge, aggregate=rouge_aggregate)
