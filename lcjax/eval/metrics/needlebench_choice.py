"""NeedleBench v1 ATC multiple-choice (`atc_choice`): OpenCompass @a5acc4b `opencompass/utils/text_postprocessors.py`
(`first_option_postprocess`, options "ABCD") and `opencompass/openicl/icl_evaluator/icl_circular_evaluator.py`
(`CircularEvaluator`), as `configs/datasets/needlebench/atc/atc_choice.py` configures them.

Each question is asked four times with its options rotated (patterns ABCD, BCDA, CDAB, DABC); a reference is
"<question id>--<gold letter>--<pattern>". The prediction's option is the first match of the official pattern list
(Chinese and English answer phrasings, then the "cushion" patterns "X:" and any option letter), '' if none; note
the official list's missing comma that fuses the "故选" pattern with the next one, kept here. The corpus metrics are
CircularEvaluator's: acc_4 / acc_1 (plain accuracy over all rotations / the ABCD one), more_i_j (share of questions
with at least j of i rotations right), perf_4 / perf_1 (all right), vote_4 / vote_1 (majority vote mapped back to
the original options) and the prior_X answer frequencies. "score" is perf_4 (CircularEval: a question counts only
when all four rotations are answered correctly).
"""

from __future__ import annotations

import collections
import re
from typing import Sequence

from lcjax.eval.metrics.base import register

CP4, CP1 = ("ABCD", "BCDA", "CDAB", "DABC"), ("ABCD",)


def _patterns(o: str) -> list[str]:
  """The official pattern list for options `o` (in order), with the cushion patterns at the end."""
  return [
      rf"答案是?\s*([{o}])", rf"答案是?\s*：\s*([{o}])", rf"答案是?\s*:\s*([{o}])", rf"答案选项应?该?是\s*([{o}])",
      rf"答案选项应?该?为\s*([{o}])", rf"答案应该?是\s*([{o}])", rf"答案应该?选\s*([{o}])",
      rf"答案选项为?\s*：\s*([{o}])", rf"答案选项为?\s+\(?\*?\*?([{o}])\*?\*?\)?", rf"答案选项是?\s*:\s*([{o}])",
      rf"答案为\s*([{o}])", rf"答案选\s*([{o}])", rf"选择?\s*([{o}])",
      rf"故选?\s*([{o}])" rf"只有选?项?\s?([{o}])\s?是?对",  # the official list lacks this comma
      rf"只有选?项?\s?([{o}])\s?是?错", rf"只有选?项?\s?([{o}])\s?不?正确", rf"只有选?项?\s?([{o}])\s?错误",
      rf"说法不?对选?项?的?是\s?([{o}])", rf"说法不?正确选?项?的?是\s?([{o}])", rf"说法错误选?项?的?是\s?([{o}])",
      rf"([{o}])\s?是正确的", rf"([{o}])\s?是正确答案", rf"选项\s?([{o}])\s?正确", rf"所以答\s?([{o}])",
      rf"所以\s?([{o}][.。$]?$)", rf"所有\s?([{o}][.。$]?$)", rf"[\s，：:,]([{o}])[。，,\.]?$",
      rf"[\s，,：:][故即]([{o}])[。\.]?$", rf"[\s，,：:]因此([{o}])[。\.]?$", rf"[是为。]\s?([{o}])[。\.]?$",
      rf"因此\s?([{o}])[。\.]?$", rf"显然\s?([{o}])[。\.]?$", r"答案是\s?(\S+)(?:。|$)", r"答案应该是\s?(\S+)(?:。|$)",
      r"答案为\s?(\S+)(?:。|$)", rf"(?i)ANSWER\s*:\s*([{o}])", rf"[Tt]he answer is:?\s+\(?([{o}])\)?",
      rf"[Tt]he answer is:?\s+\(?\*?\*?([{o}])\*?\*?\)?", rf"[Tt]he answer is option:?\s+\(?([{o}])\)?",
      rf"[Tt]he correct answer is:?\s+\(?([{o}])\)?", rf"[Tt]he correct answer is option:?\s+\(?([{o}])\)?",
      rf"[Tt]he correct answer is:?.*?boxed{{([{o}])}}", rf"[Tt]he correct option is:?.*?boxed{{([{o}])}}",
      rf"[Tt]he correct answer option is:?.*?boxed{{([{o}])}}",
      rf"[Tt]he answer to the question is:?\s+\(?([{o}])\)?", rf"^选项\s?([{o}])", rf"^([{o}])\s?选?项",
      rf"(\s|^)[{o}][\s。，,：:\.$]", r"1.\s?(.*?)$", rf"1.\s?([{o}])[.。$]?$",
      rf"([{o}]):", rf"([{o}])"]


def first_option_postprocess(text: str, options: str = "ABCD") -> str:
  """The first option letter found by the first matching pattern whose group (or whole match, when the group is
  empty) contains one; '' if none does."""
  text = text.strip()
  for pattern in _patterns(options):
    match = re.search(pattern, text, re.DOTALL)
    if match:
      outputs = match.group(1) if match.group(1) else match.group(0)
      for option in options:
        if option in outputs:
          return option
  return ""


def circular_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict:
  """`CircularEvaluator.score` (predictions already post-processed to a letter or '')."""
  parsed = [r.split("--") for r in references]
  n = len(predictions)
  out = {}
  for k, patterns in (("acc_4", CP4), ("acc_1", CP1)):
    hits = sum(1 for p, (_, ref, c) in zip(predictions, parsed) if c in patterns and p == ref)
    out[k] = hits / n * 4 / int(k.split("_")[-1]) * 100
  details: dict = {4: {}, 1: {}}
  for p, (idx, ref, c) in zip(predictions, parsed):
    details[4].setdefault(idx, [])
    details[1].setdefault(idx, [])
    for i, patterns in ((4, CP4), (1, CP1)):
      if c in patterns:
        details[i][idx].append(p == ref)
  for i in (1, 4):
    for j in range(i + 1):
      out[f"more_{i}_{j}"] = sum(1 for v in details[i].values() if sum(v) >= j) / len(details[i]) * 100
  for i in (1, 4):
    out[f"perf_{i}"] = out[f"more_{i}_{i}"]
  votes: dict = {"vote_4": {}, "vote_1": {}}
  gold = {}
  for p, (idx, ref, c) in zip(predictions, parsed):
    back = dict(zip("ABCD", c))
    p = back[p] if p in ("A", "B", "C", "D") else "-"
    if idx not in votes["vote_4"]:
      votes["vote_4"][idx], votes["vote_1"][idx] = collections.Counter(), collections.Counter()
      gold[idx] = back[ref]
    if c in CP4:
      votes["vote_4"][idx][p] += 1
    if c in CP1:
      votes["vote_1"][idx][p] += 1
  for k in ("vote_4", "vote_1"):
    out[k] = sum(1 for idx, v in votes[k].items() if gold[idx] == v.most_common(1)[0][0]) / len(votes[k]) * 100
  for letter in ("A", "B", "C", "D", "-"):
    hits = sum(1 for p in predictions if (p if p in ("A", "B", "C", "D") else "-") == letter)
    out[f"prior_{letter}"] = hits / n * 100
  return out


def _atc_choice(prediction: str, reference: str, **kwargs) -> dict:
  """NeedleBench ATC multiple choice: the post-processed option letter vs "<id>--<letter>--<pattern>"."""
  letter = first_option_postprocess(prediction)
  return {"score": float(letter == reference.split("--")[1]), "option": letter, "reference": reference}


def _atc_choice_aggregate(rows: Sequence[dict]) -> dict:
  out = circular_metrics([r["option"] for r in rows], [r["reference"] for r in rows])
  return {"score": out["perf_4"], **out, "n": len(rows)}


register("needlebench.atc_choice", _atc_choice, aggregate=_atc_choice_aggregate)
