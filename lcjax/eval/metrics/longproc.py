"""LongProc's rule-based checkers (princeton-pli/LongProc @78e873a `longproc/*_evaluator.py`, `longproc_data.py`).

tom_tracking keeps every line that starts with "-" (after the `strip().startswith("-")` filter of
`eval_tom_tracking`), lowercases and normalises it; html_to_tsv fails (extraction_rate 0, F1 0) wherever the
official pandas code raises, e.g. when the parsed table's column count differs from the gold's. Deliberate
difference: countdown solutions are parsed, not `eval`ed, and a malformed equation line (which makes the official
`eval` / int() raise) scores 0.

Each checker returns {"accuracy", "partial_accuracy", "extraction_rate"} (html_to_tsv: precision / recall / F1)
like the official `eval_*` functions. The registered score is what the LongProc paper reports: accuracy for
path_traversal, tom_tracking, countdown and pseudo_to_code, row-level F1 for html_to_tsv; corpus numbers are
`example_usage.py`'s sum / n of each metric (the score x100).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import string
import subprocess
import tempfile
from typing import Sequence

from lcjax.errors import ImplUnavailableError
from lcjax.eval.metrics.base import register


def extract_with_tag(response: str, tag: str) -> str | None:
  """Text between the first <tag> and the first </tag>, stripped; None if either is missing."""
  start, end = response.find(f"<{tag}>"), response.find(f"</{tag}>")
  if start == -1 or end == -1:
    return None
  return response[start + len(tag) + 2:end].strip()


def eval_path_traversal(prediction: str, reference: str) -> dict:
  """<Route> must equal the gold route; partial = index of the first wrong line + 1 over the gold lines."""
  parsed = extract_with_tag(prediction, "Route")
  if parsed is None:
    return {"accuracy": 0.0, "partial_accuracy": 0.0, "extraction_rate": 0.0}
  gt, parsed = reference.strip(), parsed.strip()
  if gt == parsed:
    return {"accuracy": 1.0, "partial_accuracy": 1.0, "extraction_rate": 1.0}
  gt_lines, pred_lines = gt.split("\n"), parsed.split("\n")
  i = 0
  for i, (gl, pl) in enumerate(zip(gt_lines, pred_lines)):
    if gl != pl:
      break
  return {"accuracy": 0.0, "partial_accuracy": (i + 1) / len(gt_lines), "extraction_rate": 1.0}


_TOM_DROP = re.compile(r"\b(a|an|the|on|in|at|the|step|thinks|think|believes|believe|is|are|of|location|know|knows|"
                       r"belief)\b")


def _normalize_tom(s: str) -> str:
  s = "".join(ch for ch in s.lower() if ch not in string.punctuation and ch != "’")
  return " ".join(_TOM_DROP.sub(" ", s).split())


def _belief(line: str) -> str | None:
  """`_extract_belief_content`: the normalised text after the first "-" of a line starting with "-"."""
  if line.startswith("-"):
    return _normalize_tom(line.split("-", 1)[1].strip())
  return None


def evaluate_tom_trace(response: str, ground_truth: str) -> tuple[float, float]:
  """(strict, partial) accuracy of the belief traces: every line starting with "-" (empty beliefs dropped)."""
  model = [b for b in (_belief(x) for x in response.strip().split("\n")) if b]
  gold = [b for b in (_belief(x) for x in ground_truth.strip().split("\n")) if b]
  if len(model) == len(gold) and all(a == b for a, b in zip(model, gold)):
    return 1.0, 1.0
  first = next((i for i, (a, b) in enumerate(zip(model, gold)) if a != b), None)
  if first is not None:
    return 0.0, first / len(gold)
  return 0.0, min(len(model), len(gold)) / len(gold)


def eval_tom_tracking(prediction: str, reference: str) -> dict:
  """Keeps only lines starting with "-" on both sides, then compares belief traces."""
  keep = lambda text: "\n".join(x for x in text.splitlines() if x.strip().startswith("-"))  # noqa: E731
  strict, partial = evaluate_tom_trace(keep(prediction), keep(reference))
  return {"accuracy": strict, "partial_accuracy": partial, "extraction_rate": 1.0}


# ----------------------------------------------------------------------------------------------------- countdown
_MAX_INTERMEDIATE = 2000
_SOLUTION_TEMPLATE = ("Now we have found the target, let's trace back the solution:\nFinal step: {2}\n"
                      "The step before: {1}\nThe first step: {0}\n\nOutput the solution in the required format:\n"
                      "<Solution>\n{0}\n{1}\n{2}\n</Solution>\n")


def _indent(level: int) -> str:
  return "" if level == 0 else " " * level + "|- "


def _pairs(nums):
  for i, a in enumerate(nums):
    for j in range(i + 1, len(nums)):
      yield a, nums[j], [x for k, x in enumerate(nums) if k not in (i, j)]


def _dfs(nums, target, parent, eq, depth, states, log) -> bool:
  """LongProc's verbalised depth-first search: appends to `log` exactly the text its demonstration contains."""
  sid = len(states)
  states.append((parent, eq))
  if eq is not None:
    if nums[0] == "DIV_BY_ZERO":
      log.append(f"\n{_indent(depth)}Try {eq}. drop this branch.")
      return False
    if nums[0] % 1 != 0:
      log.append(f"\n{_indent(depth)}Try {eq}. {nums[0]:.1f} is a decimal, drop this branch.")
      return False
    if nums[0] >= _MAX_INTERMEDIATE:
      log.append(f"\n{_indent(depth)}Try {eq}. {nums[0]} exceeds the maximum intermediate result, drop this branch.")
      return False
  if len(nums) == 1:
    ok = nums[0] == target
    verdict = "==" if ok else "!="
    tail = "target found!" if ok else "drop this branch."
    log.append(f"\n{_indent(depth)}Try {eq}. Evaluate {nums[0]} {verdict} {target}, {tail}")
    return ok
  if eq is not None:
    log.append(f"\n{_indent(depth)}Try {eq}. Add {nums[0]} to the number set.")
  options = [(a, b) for a, b, _ in _pairs(nums)]
  if len(nums) == 2:
    log.append(f" Current number set: {nums}, target: {target}, just two numbers left.")
  else:
    head = " Current number set" if eq is not None else "Initial number set"
    log.append(f"{head}: {nums}, target: {target}. Options for choosing two numbers: {options}.")
    depth += 1
  for a, b, left in _pairs(nums):
    if len(nums) > 2:
      log.append(f"\n{_indent(depth)}Pick two numbers ({a}, {b}) (numbers left: {left}). Try possible operations.")
    a, b = (b, a) if a < b else (a, b)
    trials = [([a + b], f"{a} + {b} = {a + b}"), ([a - b], f"{a} - {b} = {a - b}"), ([a * b], f"{a} * {b} = {a * b}")]
    if b == 0:
      trials.append((["DIV_BY_ZERO"], f"{a} / {b} (invalid operation)"))
    elif a % b == 0:
      trials.append(([a // b], f"{a} / {b} = {a // b}"))
    else:
      trials.append(([a / b], f"{a} / {b} = {a / b:.1f}"))
    for head, text in trials:
      if _dfs(head + left, target, sid, text, depth + 1, states, log):
        return True
  return False


def build_countdown_demonstration(nums: Sequence[int], target: int) -> tuple[list[str], str]:
  """(solution equations, "# Search Procedure\\n..." demonstration) as LongProc generates the gold procedure."""
  states, log = [], []
  if not _dfs(list(nums), target, -1, None, 0, states, log):
    raise ValueError(f"countdown {list(nums)} -> {target} has no solution")
  solution, sid = [], len(states) - 1
  while states[sid][0] != -1:
    solution.append(states[sid][1])
    sid = states[sid][0]
  solution.reverse()
  return solution, "# Search Procedure\n" + "".join(log) + "\n\n" + _SOLUTION_TEMPLATE.format(*solution)


def _parse_equation(line: str):
  line = line.strip()
  if len(line.split("=")) != 2:
    return False, None, None, None
  lhs, rhs = line.split("=")
  op = next((o for o in "+-*/" if o in lhs), None)
  if op is None:
    return False, None, None, None
  a, b = lhs.split(op)
  a, b, c = int(a), int(b), int(rhs)
  value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else float("nan")}[op]
  return value == c, a, b, c


def evaluate_countdown_final_solution(nums: Sequence[int], target: int, solution: str) -> bool:
  """Three "a op b = c" lines using the numbers exactly once and ending at the target. (The official code `eval`s
  the left side; for the "a op b" strings it accepts this arithmetic is the same.)"""
  pool = list(nums)
  lines = solution.split("\n")
  if len(lines) != 3:
    return False
  for line in lines:
    try:
      ok, a, b, c = _parse_equation(line)
    except (ValueError, ZeroDivisionError):
      return False
    if not ok or a not in pool:
      return False
    pool.remove(a)
    if b not in pool:
      return False
    pool.remove(b)
    pool.append(c)
  return pool[0] == target


def evaluate_countdown_search_procedure(procedure: str, gt_procedure: str) -> float:
  """Share of gold procedure lines matched before the first wrong pick / try (the official partial accuracy)."""
  pred_lines, gt_lines = procedure.strip().split("\n"), gt_procedure.strip().split("\n")
  if pred_lines[0] != gt_lines[0]:
    return 0.0
  pred_lines, gt_lines = pred_lines[1:], gt_lines[1:]
  idx = -1
  for pl, gl in zip(pred_lines, gt_lines):
    idx += 1
    if pl == gl:
      continue
    if "Pick two numbers" in gl:
      break
    if "|- Try" in gl:
      if pl.split("=")[0] != gl.split("=")[0] or ("drop this branch" in gl) != ("drop this branch" in pl):
        break
      continue
    raise ValueError(f"Unknown line: {gl}")
  return idx / len(gt_lines)


def eval_countdown(prediction: str, reference: dict) -> dict:
  """reference: {"nums", "target", "reference_output"} (the gold demonstration)."""
  solution = extract_with_tag(prediction, "Solution")
  if solution is not None and evaluate_countdown_final_solution(reference["nums"], reference["target"], solution):
    return {"accuracy": 1.0, "partial_accuracy": 1.0, "extraction_rate": 1.0}
  rate = 1.0 if solution is not None else 0.0
  if "# Search Procedure" not in prediction:
    return {"accuracy": 0.0, "partial_accuracy": 0.0, "extraction_rate": rate}
  procedure = prediction.split("# Search Procedure")[-1].strip()
  gold = reference["reference_output"].split("# Search Procedure")[-1].split("Now we have found the target")[0]
  return {"accuracy": 0.0, "partial_accuracy": evaluate_countdown_search_procedure(procedure, gold.strip()),
          "extraction_rate": rate}


# --------------------------------------------------------------------------------------------------- html_to_tsv
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def _normalize_cell(s: str) -> str:
  s = "".join(ch for ch in s.lower() if ch not in string.punctuation)
  return " ".join(_ARTICLES.sub(" ", s).split()).replace(" ", "")


def _tsv_rows(lines: Sequence[str]) -> list[tuple[str, ...]]:
  """`_string_to_pd`: header + rows (a short last row dropped, other ragged rows -> N/A), cells normalised.

  Raises:
    ValueError where the official pandas conversion fails: duplicate header names (the per-column normalisation
    then gets a DataFrame).
  """
  data = list(csv.reader(lines, delimiter="\t"))
  header, data = data[0], data[1:]
  if len(data[-1]) != len(header):
    data = data[:-1]
  if len(set(header)) != len(header):
    raise ValueError(f"duplicate column names in {header}")
  rows = [row if len(row) == len(header) else ["N/A"] * len(header) for row in data]
  return [tuple(_normalize_cell(c) for c in row) for row in rows]


def evaluate_html_to_tsv(prediction: str, reference: str) -> dict:
  """Row precision / recall / F1 of normalised TSV rows (any order); errors score 0 with extraction_rate 0: an
  unparsable TSV, no rows, or a column count different from the gold's (pandas' `DataFrame.eq` raises there)."""
  try:
    gt = _tsv_rows(reference.strip().split("\n"))
    pred = _tsv_rows(prediction.strip().split("\n"))
    if pred and gt and len(pred[0]) != len(gt[0]):
      raise ValueError(f"Unable to coerce to Series, length must be {len(gt[0])}: given {len(pred[0])}")
    precision = sum(row in gt for row in pred) / len(pred)
    recall = sum(row in pred for row in gt) / len(gt)
  except (IndexError, ZeroDivisionError, ValueError, csv.Error) as e:
    return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "error": str(e)}
  f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
  return {"precision": precision, "recall": recall, "f1": f1, "error": None}


def eval_html_to_tsv(prediction: str, reference: str) -> dict:
  """The ```tsv block (or everything after ```tsv, or the whole text) scored by `evaluate_html_to_tsv`."""
  search = re.search(r"```tsv([\s\S]*)```", prediction)
  if search is not None:
    prediction = search.group(1).strip()
  else:
    prediction = (prediction.split("```tsv")[1] if "```tsv" in prediction else prediction).strip()
  out = evaluate_html_to_tsv(prediction, reference)
  return {**out, "extraction_rate": 1.0 if out["error"] is None else 0.0}


# ------------------------------------------------------------------------------------------------ pseudo_to_code
SPOC_HEADER = "".join(f"#include <{h}>\n" for h in (
    "cstdio", "iostream", "vector", "algorithm", "numeric", "cmath", "cstring", "set", "map", "queue", "stack",
    "list", "fstream", "climits", "cassert", "iomanip", "sstream", "bitset")) + "using namespace std;\n"


def evaluate_spoc_code(code: str, testcases, max_check: int = 10) -> tuple[bool, str]:
  """Compiles with `g++ -std=c++11 -O` and runs the first `max_check` test cases (3 s each) on exact stdout."""
  if shutil.which("g++") is None:
    raise ImplUnavailableError("LongProc pseudo_to_code needs g++ on PATH to compile and run the predicted program")
  program = SPOC_HEADER + code
  with tempfile.TemporaryDirectory() as tmp:
    name = hashlib.sha1(program.encode()).hexdigest()[-16:]
    src, exe = os.path.join(tmp, name + ".cpp"), os.path.join(tmp, name + ".bin")
    with open(src, "w") as f:
      f.write(program)
    if subprocess.run(["g++", "-std=c++11", "-O", "-o", exe, src], capture_output=True).returncode != 0:
      return False, "compilation error"
    for inputs, outputs in testcases[:max_check]:
      try:
        proc = subprocess.run([exe], input=("\n".join(inputs) + "\n").encode(), capture_output=True, timeout=3)
        if proc.stdout.decode("utf-8") != "\n".join(outputs) + "\n":
          return False, "inconsistent"
      except subprocess.TimeoutExpired:
        return False, "timeout"
      except UnicodeDecodeError:
        return False, "decode error"
  return True, ""


def eval_pseudo_to_code(prediction: str, testcases) -> dict:
  """The ```cpp (or ```c++) block must compile and pass the test cases."""
  match = re.search(r"```cpp([\s\S]*)```", re.sub(r"```c\+\+", "```cpp", prediction))
  if match is None:
    return {"accuracy": 0.0, "partial_accuracy": 0.0, "extraction_rate": 0.0}
  ok, _ = evaluate_spoc_code(match.group(1), testcases)
  return {"accuracy": float(ok), "partial_accuracy": float(ok), "extraction_rate": 1.0}


def _scored(fn, key):
  def metric(prediction: str, reference, **kwargs) -> dict:
    out = fn(prediction, reference)
    return {"score": out[key], **{k: v for k, v in out.items() if k != "error"}}

  metric.__doc__ = f"LongProc {fn.__name__.removeprefix('eval_')}: {key}"
  return metric


def longproc_aggregate(rows: Sequence[dict]) -> dict:
  """`example_usage.py`: every metric's sum / n (0..1); "score" is that of the registered key, x100 after the
  division (unrounded)."""
  if not rows:
    return {"score": 0.0, "n": 0}
  keys = [k for k in ("accuracy", "partial_accuracy", "extraction_rate", "precision", "recall", "f1") if k in rows[0]]
  out = {k: sum(float(r[k]) for r in rows) / len(rows) for k in keys}
  return {"score": sum(float(r["score"]) for r in rows) / len(rows) * 100, **out, "n": len(rows)}


register("longproc.path_traversal", _scored(eval_path_traversal, "accuracy"), aggregate=longproc_aggregate)
register("longproc.tom_tracking", _scored(eval_tom_tracking, "accuracy"), aggregate=longproc_aggregate)
register("longproc.countdown", _scored(eval_countdown, "accuracy"), aggregate=longproc_aggregate)
register("longproc.html_to_tsv", _scored(eval_html_to_tsv, "f1"), aggregate=longproc_aggregate)
register("longproc.pseudo_to_code", _scored(eval_pseudo_to_code, "accuracy"), aggregate=longproc_aggregate)
