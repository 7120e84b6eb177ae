"""SCBench official scorers (microsoft/MInference @fb56c91 `scbench/compute_scores.py`, InfiniteBench-derived).

Each SCBench task maps to an InfiniteBench scorer: kv retrieval / hashhop / prefix-suffix -> label substring;
passkey -> the first integer run equals the label; math_find -> the first number (int or float as the label);
choice -> first-letter / "answer is" / first A-D word rules on [answer, letter]; qa_eng and many_shot -> any item of
the label (uppercased) in the response; qa_chn -> character F1; vt -> string_match_all rounded to 2; summary ->
rougeLsum F (HF `evaluate`); repoqa -> BLEU function match, pass@1 at 0.8 (`scbench_repoqa`); the mixed tasks
summary_with_needles (summary + passkey) and repoqa_and_kv (repoqa + kv) score each turn with its subtask's
scorer and report each subtask separately.

Labels are what the official pipeline stores (`official_label`): the scorers iterate them as given, so a string
label is iterated character by character where the official code iterates (many_shot, qa_chn, vt), and an int
label compared with a digit string never matches (passkey). Per-turn aggregates are written with 3 decimals, as
`compute_scores` writes them.
"""

from __future__ import annotations

import re
from collections import Counter

from lcjax.errors import DataError, UnknownNameError
from lcjax.eval.metrics.base import register
from lcjax.eval.metrics.scbench_repoqa import needle_match, pass_at_1
from lcjax.eval.metrics.text import google_rouge, normalize_zh_answer


def first_int_match(prediction: str) -> str:
  """The first run of digits ("" if none)."""
  return next((x for x in re.split("[^0-9]", prediction) if x != ""), "")


def _first(label):
  return label[0] if isinstance(label, list) else label


def kv_retrieval(pred: str, label) -> float:
  """`get_score_one_kv_retrieval`: the label (a string) is a substring of the prediction."""
  return float(label in pred)


def passkey(pred: str, label) -> float:
  """The first integer run of the prediction, a string, equals the label (an int label never does, as officially)."""
  return float(_first(label) == first_int_match(pred))


def math_find(pred: str, label) -> float:
  """The first number in the prediction equals the label (int(float(x)) for int labels, float for float labels)."""
  label = _first(label)
  if isinstance(label, bool) or not isinstance(label, (int, float)):
    raise DataError(f"SCBench math_find label {label!r} is a {type(label).__name__}; accepted: int or float")
  found = re.search(r"\d+\.\d+|\d+", pred)
  if found is None:
    return 0.0
  if isinstance(label, int):
    return float(int(float(found.group(0))) == label)
  return float(float(found.group(0)) == label)


def choice_eng(pred: str, label) -> float:
  """InfiniteBench `longbook_choice_eng` on the label [answer text, option letter]: first char, answer prefixes,
  then the first A-D word (membership tests are against the label list, or substrings of a string label)."""
  pred = pred.strip()
  if pred == "":
    return 0.0
  if pred[0] in "ABCD":
    return float(pred[0] in label)
  if pred in label:
    return 1.0
  for c in ["\n", '"', "'", ".", ",", "?", "!", "{", "}"]:
    pred = pred.replace(c, " ")
  while "  " in pred:
    pred = pred.replace("  ", " ")
  for prefix in ("answer is:", "answer:", "answer is", "option is"):
    idx = pred.find(prefix)
    if idx == -1:
      continue
    if len(pred) < idx + len(prefix) + 1:
      return 0.0
    after = pred[idx + len(prefix) + 1:]
    return float(any(after.startswith(s) for s in label))
  for word in pred.split():
    if word in "ABCD":
      return float(word in label)
  return 0.0


def qa_eng(pred: str, label) -> float:
  """`get_score_one_longdialogue_qa_eng`: any item of the label (uppercased) appears in the uppercased prediction;
  a string label is iterated character by character, as officially (ICL.ManyShot's labels are strings)."""
  pred = pred.strip().upper()
  return float(any(item.upper() in pred for item in label))


def qa_chn(pred: str, label) -> float:
  """Character-level F1 after Chinese normalisation, max over the items of the label (a string label is iterated
  character by character, as officially)."""
  best = 0.0
  for gold in label:
    p, g = list(normalize_zh_answer(pred)), list(normalize_zh_answer(gold))
    same = sum((Counter(p) & Counter(g)).values())
    if same:
      precision, recall = same / len(p), same / len(g)
      best = max(best, 2 * precision * recall / (precision + recall))
  return best


def vt(pred: str, label) -> float:
  """string_match_all over the items of the label, rounded to 2 decimals."""
  return round(sum(1.0 if r.lower() in pred.lower() else 0.0 for r in label) / len(label), 2)


def summary(pred: str, label) -> float:
  """`get_score_one_longbook_sum_eng`: HF `evaluate`'s rouge `compute(..., use_aggregator=False)["rougeLsum"]`,
  i.e. rouge-score's rougeLsum F-measure (default tokenizer, no stemmer; summary-level LCS over newline-separated
  sentences: `split_summaries=False`, so no NLTK sentence splitter and no downloaded data)."""
  return google_rouge(label, pred, types=("rougeLsum",))["rougeLsum"].fmeasure


SCORERS = {"scbench_kv": kv_retrieval, "scbench_kv_hard": kv_retrieval, "scbench_hashhop": kv_retrieval,
           "scbench_prefix_suffix": kv_retrieval, "scbench_kv_compressible": kv_retrieval,
           "scbench_passkey": passkey, "scbench_mf": math_find, "scbench_choice_eng": choice_eng,
           "scbench_qa_eng": qa_eng, "scbench_qa_chn": qa_chn, "scbench_vt": vt, "scbench_many_shot": qa_eng,
           "scbench_summary": summary}
MIXED = {"scbench_summary_with_needles": ("scbench_summary", "scbench_passkey"),
         "scbench_repoqa_and_kv": ("scbench_repoqa", "scbench_kv")}


def official_label(turn: dict, task: str):
  """The label `run_scbench.py` stores for one turn (`eval_utils.get_ground_truth`): choice_eng -> [answer text,
  its option letter] (the answer must be one of the options), qa_eng -> [answer], every other task -> the answer
  as it is in the data (strings, except math_find's ints)."""
  if task == "scbench_choice_eng":
    options = list(turn.get("options") or [])
    if turn["answer"] not in options:
      raise DataError(f"SCBench choice_eng answer {turn['answer']!r} is not one of its options {options}")
    return [turn["answer"], "ABCD"[options.index(turn["answer"])]]
  if task == "scbench_qa_eng":
    return [turn["answer"]]
  return turn["answer"]


def _scbench(prediction: str, reference, task: str = "scbench_kv", turn: int = 0, lang: str = "python",
             func_name: str | None = None, needles=(), **kwargs) -> dict:
  """SCBench per-turn score with the task's scorer (reference: `official_label`). Mixed tasks pass the turn's
  subtask as `task`; RepoQA turns also pass `lang`, `func_name` and the repository's `needles` ([{name, needle}])
  and score 1 when they pass at the reported 0.8 threshold."""
  if task == "scbench_repoqa":
    match = needle_match(prediction, func_name, needles, lang)
    return {"score": pass_at_1([match]), **match, "turn": turn, "subtask": task}
  if task not in SCORERS:
    raise UnknownNameError(f"SCBench task {task!r}; known: {sorted(SCORERS) + ['scbench_repoqa']}")
  return {"score": float(SCORERS[task](prediction, reference)), "turn": turn, "subtask": task}


def three_decimals(value: float) -> float:
  """`f"{value:.3f}"` as a float: how `compute_scores.py` writes every number."""
  return float(f"{value:.3f}")


def per_turn_aggregate(rows) -> dict:
  """`compute_scores` in multi-turn mode: accuracy per turn index (in order of first appearance) and, for the mixed
  tasks, per subtask within the turn ("turn_<t>/<subtask>"), written as f"{100 * acc:.3f}"; "score" is the mean
  over every scored turn, written the same way (the official script prints only the per-turn numbers)."""
  groups: dict = {}
  subtasks = {r.get("subtask") for r in rows}
  for r in rows:
    key = f"turn_{r.get('turn', 0)}" + (f"/{r.get('subtask')}" if len(subtasks) > 1 else "")
    groups.setdefault(key, []).append(float(r["score"]))
  out = {k: three_decimals(sum(v) / len(v) * 100) for k, v in groups.items()}
  scores = [float(r["score"]) for r in rows]
  return {"score": three_decimals(sum(scores) / len(scores) * 100) if scores else 0.0, **out, "n": len(rows)}


register("scbench.score", _scbench, aggregate=per_turn_aggregate)
