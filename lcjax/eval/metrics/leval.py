"""L-Eval official metrics (OpenLMLab/LEval @cd34b05 `Evaluation/auto_eval.py`, `em.py`, and the SCROLLS
`f1.py`/`rouge.py` it imports), reproduced with their quirks.

- Exam EM (`em.py`): the normalisation does *not* lowercase; a gold made only of the letters A-D is an option answer:
  exact match scores 1, a prediction whose letters are a subset of the gold's scores 0.25 (partial credit for
  multi-answer Coursera questions); other golds score 1 on float equality or when the gold (spaces removed,
  lowercased) is a substring of the prediction. The Aug 2023 version (@2115cd2) first replaced the prediction by its
  first line longer than one character; the Oct 2023 version (@c7cf705, current) dropped that rule. The current one
  is the default; `em_version="2023-08"` selects the old one. Reported as 100 * mean.
- `process_output_mc`: an empty response becomes "None"; a response that is a *substring* of "ABCD" is kept as
  is; otherwise (non-Coursera) the first of A/B/C/D anywhere in the response; Coursera collects the leading option
  letters, then letters before ")"/"."/space, and guesses "A" if nothing is found.
- CodeU (`process_output_code` / `process_gt_code`): both sides squeeze whitespace and drop "," "'" "\\" ".0";
  the response also loses a few filler phrases (and every "is", even inside words) and keeps its gt_len + 3 words
  after "the final output" (or its last gt_len + 3 words); then exam EM (substring rule).
- Topic retrieval: the file's rows are dealt round-robin (by row index) to the 1st/2nd/3rd-topic lists; each list's
  exam EM is rounded to 4 decimals (`LEvalMetrics._compute`) and the file score is their plain mean, not rounded.
- Sci-fi: each prediction is "<answer with the document> [fact: <answer without the document>]"
  (`Baselines/*-test.py` append the second, document-free generation); loyalty and fact halves each get exam EM of
  the first word containing "true"/"false" (rounded to 4 decimals) and the score is their plain mean. A prediction
  without "[fact:" crashes the official script (IndexError); lcjax scores both halves of it 0 (deliberate).
- F1 task: SQuAD token F1, max over references, 100 * mean.
- ROUGE task: Google rouge-score (no stemmer) F-measures of rouge1/2/L, max over references, averaged, and the
  L-Eval score is their geometric mean. The official text post-processing (NLTK sentence split joined by newlines)
  only affects rougeLsum, which the score does not use, so it is not reproduced (it would need NLTK data).
- Every metric is rounded to 4 decimals, as `LEvalMetrics._compute` does.
"""

from __future__ import annotations

import re
from typing import Sequence

from lcjax.errors import ConfigError, DataError
from lcjax.eval.metrics.base import mean_raw, register
from lcjax.eval.metrics.text import google_rouge, normalize_answer, qa_f1

WITH_OPTION_TASKS = ("coursera", "quality", "tpo")


EM_VERSIONS = ("current", "2023-08")


def exact_match_score(prediction: str, ground_truth: str, em_version: str = "current") -> float:
  """L-Eval's per-reference exam score: 1, 0.25 (option subset) or 0 (`em.py` @c7cf705; "2023-08": @2115cd2)."""
  if em_version not in EM_VERSIONS:
    raise ConfigError(f"L-Eval em_version {em_version!r} is not one of {EM_VERSIONS}")
  gold = normalize_answer(ground_truth, lower=False)
  if all(ch in "ABCD" for ch in gold):
    pred = normalize_answer(prediction, lower=False)
    if pred == gold:
      return 1
    return 0.25 if set(pred).issubset(set(gold)) else 0
  try:
    return int(float(prediction) == float(ground_truth))
  except ValueError:
    if em_version == "2023-08":
      for line in prediction.split("\n"):
        if len(line) > 1:
          prediction = line
          break
    return int(ground_truth.lower().replace(" ", "") in prediction.lower().replace(" ", ""))


def exam_em(prediction: str, references, em_version: str = "current") -> float:
  """Max exam score over the references, on L-Eval's 0..100 scale."""
  refs = [references] if isinstance(references, str) else references
  return 100.0 * max(exact_match_score(prediction, r, em_version) for r in refs)


def compute_exact_match(predictions: Sequence[str], references: Sequence[Sequence[str]],
                        em_version: str = "current") -> float:
  """100 * mean of the max-over-references exam score (`compute_exact_match`: sequential sum, then / n)."""
  total = 0
  for p, refs in zip(predictions, references):
    total += max(exact_match_score(p, r, em_version) for r in refs)
  return 100.0 * total / len(predictions)


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


def process_gt_code(response: str) -> str:
  """CodeU gold (and response) cleaning: whitespace runs -> " ", drop "," "'" "\\" ".0", close "] [" / "[ [" / "] ]"."""
  response = re.sub(r"\s+", " ", response)
  for old, new in ((",", ""), ("'", ""), ("\\", ""), (".0", ""), ("] [", "]["), ("[ [", "[["), ("] ]", "]]")):
    response = response.replace(old, new)
  return response


_CODE_FILLERS = ("will be", "of the code", "is", "would be", "the value of", "the result of", "printed")


def process_output_code(response: str, gt: str) -> str:
  """CodeU answer: the cleaned response without filler phrases, cut to the gold's word count + 3 words after
  "the final output" (or to its last gold-count + 3 words)."""
  keep = len(gt.split()) + 3
  response = process_gt_code(response)
  for filler in _CODE_FILLERS:
    response = response.replace(filler, "")
  if "the final output" in response:
    words = re.split(r"\s+", response.split("the final output")[-1])[:keep]
  else:
    words = re.split(r"\s+", response)[-keep:]
  return " ".join(words)


def process_gt_judge(response: str) -> list[str] | None:
  """[loyalty, fact] halves of a lowercased sci-fi text split at "[fact:" (the fact half loses its last character,
  the closing bracket); None when there is no "[fact:" (the official code raises IndexError there)."""
  parts = response.lower().split("[fact:")
  if len(parts) < 2:
    return None
  return [parts[0].strip(), parts[1][:-1].strip()]


def _true_false(text: str) -> str:
  for word in text.split():
    if "true" in word:
      return "true"
    if "false" in word:
      return "false"
  return "<error>"


def process_output_judge(response: str) -> list[str] | None:
  """[loyalty, fact] answers of a sci-fi prediction: the first word containing "true"/"false" of each half,
  "<error>" if none; None without "[fact:"."""
  halves = process_gt_judge(response)
  return None if halves is None else [_true_false(h) for h in halves]


def _exam_metric(predictions, references, em_version: str) -> float:
  """`LEvalMetrics.compute` for the exam config: exact_match rounded to 4 decimals."""
  return round(compute_exact_match(predictions, references, em_version), 4)


def score_prediction_file(rows: Sequence[dict], file_name: str, em_version: str = "current") -> dict:
  """Scores an L-Eval `*.pred.jsonl` the way `auto_eval.py --pred_file file_name` does.

  Args:
    rows: the file's records (`gt`, `evaluation`, and a `*_pred` key).
    file_name: the prediction file's name or path; the official script routes by substrings of it.
    em_version: "current" (em.py @c7cf705) or "2023-08" (@2115cd2, first line longer than one character).
  Returns:
    {"metric": "exam"|"f1"|"rouge", "score": the LEval_score (the printed average for topic retrieval and sci_fi),
    "n": scored rows, ...}.
  """
  key = next(k for k in rows[0] if "_pred" in k)
  options = any(task in file_name for task in WITH_OPTION_TASKS)
  preds: list = []
  refs: list = []
  if "topic_retrieval_longchat" in file_name:
    preds, refs = [[], [], []], [[], [], []]
  elif "sci_fi" in file_name:
    preds, refs = [[], []], [[], []]
  config, n = None, 0
  for i, r in enumerate(rows):  # i counts every row, skipped ones included (the official i % 3)
    if r["evaluation"] not in ("f1", "rouge", "exam"):
      continue
    n += 1
    pred = r[key]
    if options:
      refs.append([process_gt_mc(r["gt"])])
      preds.append(process_output_mc(pred, coursera="coursera" in file_name))
    elif "gsm" in file_name:
      refs.append([process_math(r["gt"])])
      preds.append(process_math(pred))
    elif "codeU" in file_name:
      refs.append([process_gt_code(r["gt"])])
      preds.append(process_output_code(pred, r["gt"]))
    elif "topic_retrieval_longchat" in file_name:
      refs[i % 3].append([r["gt"]])
      preds[i % 3].append(pred)
    elif "sci_fi" in file_name:
      gold, judged = process_gt_judge(r["gt"]), process_output_judge(pred)
      judged = judged or ["<crash>", "<crash>"]  # deliberate: the official script crashes on such a prediction
      for half in range(2):
        refs[half].append([gold[half]])
        preds[half].append(judged[half])
    else:
      refs.append([r["gt"]])
      preds.append(pred)
    config = r["evaluation"]
  if config is None:
    raise DataError(f"L-Eval prediction file {file_name}: no row with an automatic evaluation (exam, f1, rouge)")
  if "topic_retrieval_longchat" in file_name or "sci_fi" in file_name:
    parts = [_exam_metric(p, r, em_version) for p, r in zip(preds, refs)]
    return {"metric": "exam", "score": sum(parts) / len(parts), "parts": parts, "n": n}
  if config == "exam":
    return {"metric": "exam", "score": _exam_metric(preds, refs, em_version), "n": n}
  if config == "f1":
    return {"metric": "f1", "score": round(scrolls_f1(preds, refs), 4), "n": n}
  return {"metric": "rouge", **rouge_aggregate([rouge_example(p, r) for p, r in zip(preds, refs)])}


def judge_loyalty(text: str) -> str:
  """Sci-fi loyalty answer: "true"/"false" from the first lowercased word containing it before "[fact:", else
  "<error>" (`process_output_judge`'s first half)."""
  return _true_false(text.lower().split("[fact:")[0])


def _sci_fi_loyalty(prediction: str, references, em_version: str = "current", **kwargs) -> float:
  """L-Eval sci_fi loyalty half only (0..100): the judged True/False vs the gold before "[fact:"."""
  refs = [references] if isinstance(references, str) else references
  return exam_em(judge_loyalty(prediction), [r.lower().split("[fact:")[0].strip() for r in refs], em_version)


def _sci_fi(prediction: str, references, em_version: str = "current", **kwargs) -> dict:
  """L-Eval sci_fi (0..100): loyalty and fact halves of "<answer> [fact: <document-free answer>]" (both 0 without
  "[fact:", where the official script crashes)."""
  refs = [references] if isinstance(references, str) else references
  judged = process_output_judge(prediction)
  golds = [process_gt_judge(r) for r in refs]
  halves = [0.0, 0.0] if judged is None else [exam_em(judged[h], [g[h] for g in golds], em_version) for h in (0, 1)]
  return {"score": (halves[0] + halves[1]) / 2, "loyalty": halves[0], "fact": halves[1]}


def _sci_fi_aggregate(rows: Sequence[dict]) -> dict:
  """Each half's mean rounded to 4 decimals, then their plain mean (`auto_eval.py`'s balance score)."""
  halves = [round(sum(float(r[k]) for r in rows) / len(rows), 4) for k in ("loyalty", "fact")]
  return {"score": sum(halves) / 2, "loyalty": halves[0], "fact": halves[1], "n": len(rows)}


def _topic(prediction: str, references, position: int = 0, em_version: str = "current", **kwargs) -> dict:
  """L-Eval topic retrieval exam EM (0..100) of the 1st/2nd/3rd topic question (`position` 0..2)."""
  refs = [references] if isinstance(references, str) else references
  em = max(exact_match_score(prediction, r, em_version) for r in refs)
  return {"score": 100.0 * em, "em": em, "position": int(position) % 3}


def _topic_aggregate(rows: Sequence[dict]) -> dict:
  """Per-position means rounded to 4 decimals, then their plain mean over the three positions."""
  parts = []
  for pos in range(3):
    group = [r["em"] for r in rows if r["position"] == pos]
    parts.append(round(100.0 * sum(group) / len(group), 4) if group else 0.0)
  return {"score": sum(parts) / 3, "parts": parts, "n": len(rows)}


def _exam_code(prediction: str, references, em_version: str = "current", **kwargs) -> float:
  """L-Eval CodeU exam EM (0..100) on process_output_code / process_gt_code."""
  refs = [references] if isinstance(references, str) else references
  return max(exam_em(process_output_code(prediction, r), [process_gt_code(r)], em_version) for r in refs)


def _exam_options(prediction: str, references, coursera: bool = False, em_version: str = "current",
                  **kwargs) -> float:
  """L-Eval exam EM for option questions: letters from process_output_mc vs process_gt_mc (0..100)."""
  refs = [references] if isinstance(references, str) else references
  return exam_em(process_output_mc(prediction, coursera), [process_gt_mc(r) for r in refs], em_version)


def _exam_math(prediction: str, references, em_version: str = "current", **kwargs) -> float:
  """L-Eval GSM100 exam EM on process_math digits (0..100)."""
  refs = [references] if isinstance(references, str) else references
  return exam_em(process_math(prediction), [process_math(r) for r in refs], em_version)


def _exam_plain(prediction: str, references, em_version: str = "current", **kwargs) -> float:
  """L-Eval exam EM on raw text (closed-ended tasks without special parsing, 0..100)."""
  return exam_em(prediction, references, em_version)


def _f1(prediction: str, references, **kwargs) -> dict:
  """L-Eval / SCROLLS token F1 (0..100), max over references."""
  refs = [references] if isinstance(references, str) else references
  f1 = max(qa_f1(prediction, r) for r in refs)
  return {"score": 100.0 * f1, "f1": f1}


def _rouge(prediction: str, references, **kwargs) -> dict:
  """L-Eval ROUGE (rouge-score, no stemmer); corpus score is the geometric mean of R-1/R-2/R-L."""
  out = rouge_example(prediction, references)
  return {"score": (out["rouge1"] * out["rouge2"] * out["rougeL"]) ** (1 / 3), **out}


def _round4(rows):
  out = mean_raw(rows)
  out["score"] = round(out["score"], 4)
  return out


def _f1_aggregate(rows):
  """`compute_f1`: 100.0 * sum(F1) / n, rounded to 4 decimals (exam scores are multiples of 25: already exact)."""
  if not rows:
    return {"score": 0.0, "n": 0}
  return {"score": round(100.0 * sum(r["f1"] for r in rows) / len(rows), 4), "n": len(rows)}


register("leval.exam_options", _exam_options, aggregate=_round4)
register("leval.exam_math", _exam_math, aggregate=_round4)
register("leval.exam", _exam_plain, aggregate=_round4)
register("leval.sci_fi_loyalty", _sci_fi_loyalty, aggregate=_round4)
register("leval.sci_fi", _sci_fi, aggregate=_sci_fi_aggregate)
register("leval.topic_retrieval", _topic, aggregate=_topic_aggregate)
register("leval.exam_code", _exam_code, aggregate=_round4)
register("leval.f1", _f1, aggregate=_f1_aggregate)
register("leval.rouge", _rouge, aggregate=rouge_aggregate)
