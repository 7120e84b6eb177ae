"""LongICLBench official metrics (TIGER-AI-Lab/LongICLBench @9c5da3d `*_infer.py` parsing, `fewnerd_evaluate.py`,
`dialogueRE_evaluate.py`).

- Classification tasks (banking77, goemotion, discovery: accuracy; tacred: micro-F1): the label is cut from the
  response after the test input and the label marker ("intent category:", "emotion category:", ...), up to the
  next example marker, first line; banking77 / goemotion / discovery lowercase both sides (discovery also drops
  “ ” , . "), TACRED compares case-sensitively and counts a prediction toward precision when it names a label.
- Few-NERD: the response is parsed into {entity: type} lines ("Entity: Type") after the test sentence; micro
  precision / recall over all sentences with 1e-8 smoothing; F1 = 2PR / (P + R). Deliberate difference: with no
  correct entity at all (P + R = 0) `fewnerd_evaluate.py` raises ZeroDivisionError; lcjax scores F1 0.
- DialogRE: predicted relations are the comma-split answer; a prediction counts towards precision if it contains
  any known relation name; position i is correct if the label equals or is contained in the i-th prediction; the
  running F1 stops once 500 labels have been seen (the official early `break`).
"""

from __future__ import annotations

import re
from typing import Sequence

from lcjax.errors import UnknownNameError
from lcjax.eval.metrics.base import register

DIALOGUE_RELATIONS = (
    "per:alternate_names", "per:alumni", "per:place_of_residence", "per:employee_or_member_of", "per:girl/boyfriend",
    "per:title", "per:positive_impression", "gpe:residents_of_place", "org:employees_or_members", "per:children",
    "per:parents", "per:siblings", "per:spouse", "per:friends", "per:negative_impression", "per:client", "per:pet",
    "per:place_of_work", "per:boss", "per:subordinate", "per:acquaintance", "per:roommate", "per:dates",
    "per:other_family", "per:age", "per:visited_place", "gpe:visitors_of_place", "per:origin", "per:neighbor",
    "per:works", "per:schools_attended", "org:students", "per:major", "per:date_of_birth")


def parse_fewnerd(response: str, sentence: str) -> dict:
  """{entity: type} from the lines after the sentence (or the whole response), stopping at the first line that is
  empty, has no ": " or starts with "Sentence"/"sentence"."""
  text = response.split(sentence)[-1] if sentence in response else response
  out = {}
  for line in text.strip().split("\n"):
    if line and ": " in line and not line.startswith("Sentence") and not line.startswith("sentence"):
      parts = line.split(": ")
      out[parts[0]] = parts[1]
    else:
      break
  return out


def fewnerd_micro_f1(predictions: Sequence[dict], labels: Sequence[dict]) -> dict:
  """Micro precision / recall / F1 over (entity, type) pairs with the official 1e-8 smoothing."""
  n_pred = sum(len(p) for p in predictions)
  n_label = sum(len(g) for g in labels)
  correct = sum(1 for p, g in zip(predictions, labels) for e in p if e in g and g[e] == p[e])
  precision, recall = correct / (n_pred + 1e-8), correct / (n_label + 1e-8)
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return {"precision": precision, "recall": recall, "f1": f1}


def parse_dialogue_re(response: str, dialogue: str, n_relations: int) -> str:
  """The relation answer line as `dialoguere_infer.py` cuts it from the response."""
  marker = f"The {n_relations} respective relations between each entity pair are:"
  response = response.split(dialogue)[-1].strip().split(marker)[-1].strip()
  response = response.split("dialogue")[0].strip().split("Dialogue")[0].strip()
  return response.strip().split("\n")[0].strip().split("[/INST]")[0].strip()


def dialogue_re_f1(preds: Sequence[str], labels: Sequence[str]) -> float:
  """DialogRE running micro-F1 (x100) with the 500-label early stop."""
  total_label = total_pred = correct = 0
  f1 = 0.0
  for pred_s, label_s in zip(preds, labels):
    label = [x.strip() for x in label_s.split(",")]
    pred = [x.strip() for x in pred_s.split(",")]
    total_label += len(label)
    total_pred += sum(1 for p in pred if any(r in p for r in DIALOGUE_RELATIONS))
    correct += sum(1 for i in range(min(len(label), len(pred))) if label[i] == pred[i] or label[i] in pred[i])
    precision, recall = correct / (total_pred + 1e-8), correct / (total_label + 1e-8)
    f1 = 2 * precision * recall / (precision + recall + 1e-8)
    if total_label >= 500:
      break
  return f1 * 100


def _fewnerd(prediction: str, reference: dict, **kwargs) -> dict:
  """Few-NERD parsed entities vs gold (corpus: micro-F1)."""
  parsed = parse_fewnerd(prediction, reference["sentence"])
  gold = reference["entities"]
  correct = sum(1 for e in parsed if e in gold and gold[e] == parsed[e])
  return {"score": correct / max(len(gold), 1), "pred": len(parsed), "label": len(gold), "correct": correct}


def _fewnerd_aggregate(rows: Sequence[dict]) -> dict:
  n_pred, n_label, correct = (sum(r[k] for r in rows) for k in ("pred", "label", "correct"))
  precision, recall = correct / (n_pred + 1e-8), correct / (n_label + 1e-8)
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return {"score": 100 * f1, "precision": precision, "recall": recall, "n": len(rows)}


def _dialogue(prediction: str, reference: dict, **kwargs) -> dict:
  """DialogRE parsed relation line vs gold relations (corpus: running micro-F1 with the 500-label stop)."""
  pred = parse_dialogue_re(prediction, reference["dialogue"], len(reference["relations"]))
  label = ", ".join(reference["relations"])
  return {"score": dialogue_re_f1([pred], [label]) / 100, "pred_line": pred, "label_line": label}


def _dialogue_aggregate(rows: Sequence[dict]) -> dict:
  return {"score": dialogue_re_f1([r["pred_line"] for r in rows], [r["label_line"] for r in rows]), "n": len(rows)}


def parse_label_response(response: str, anchor: str, marker: str, stop: str | None) -> str:
  """The label line the `*_infer.py` scripts cut from a response: after the last `anchor` (the test input) and
  the label `marker`, up to `stop` (only when the marker was found); without the anchor, up to `stop` (discovery
  has no such branch: `stop` None); then the first line of the stripped text."""
  if anchor in response:
    parts = response.split(anchor)[-1].strip().split(marker)
    if len(parts) > 1:
      response = parts[1] if stop is None else parts[1].split(stop)[0]
    else:
      response = parts[0]
  elif stop is not None:
    response = response.split(stop)[0]
  return response.strip().split("\n")[0]


_DISCOVERY_PUNCT = re.compile(r'[“”,."]')
# task: (the example field that anchors the answer, label marker, stop marker)
ICL_PARSE = {"banking77": ("text", "intent category:", "service query"),
             "goemotion": ("text", "emotion category:", "comment: "),
             "discovery": ("sentence2", "the most suitable conjunction word in the previous ( ) is", None),
             "tacred": ("sentence", "the relation between the two entities is:", "sentence:")}


def normalize_label(text: str, task: str) -> str:
  """Both sides of the comparison: lowercased and stripped (discovery first drops “ ” , . and \"); TACRED keeps
  case and only strips."""
  if task == "tacred":
    return text.strip()
  if task == "discovery":
    text = _DISCOVERY_PUNCT.sub("", text.strip())
  return text.lower().strip()


def label_prediction(response: str, task: str, anchor: str) -> str:
  """The normalised predicted label of one response for `task` in ICL_PARSE."""
  if task not in ICL_PARSE:
    raise UnknownNameError(f"LongICLBench label task {task!r}; known: {sorted(ICL_PARSE)}")
  _, marker, stop = ICL_PARSE[task]
  return normalize_label(parse_label_response(response, anchor, marker, stop), task)


def _label_metric(task: str):
  def metric(prediction: str, reference: str, text: str = "", **kwargs) -> float:
    return float(label_prediction(prediction, task, text) == normalize_label(reference, task))

  metric.__doc__ = f"LongICLBench {task}: exact match of the parsed, lowercased label ({ICL_PARSE[task][1]!r})"
  return metric


def _tacred(prediction: str, reference: str, text: str = "", labels: Sequence[str] = (), **kwargs) -> dict:
  """TACRED parsed relation (case kept) vs gold; counts toward precision when it is one of the task's labels."""
  pred = label_prediction(prediction, "tacred", text)
  return {"score": float(pred == reference), "predicted": pred in labels, "correct": pred == reference}


def _tacred_aggregate(rows: Sequence[dict]) -> dict:
  """`tacred_infer.py`'s final micro precision / recall / F1 (1e-8 smoothing), x100."""
  total_pred = sum(1 for r in rows if r["predicted"])
  total_correct = sum(1 for r in rows if r["correct"])
  precision, recall = total_correct / (total_pred + 1e-8), total_correct / (len(rows) + 1e-8)
  f1 = 2 * precision * recall / (precision + recall + 1e-8)
  return {"score": 100 * f1, "precision": precision, "recall": recall, "n": len(rows)}


def _accuracy(rows: Sequence[dict]) -> dict:
  """correct / total as the scripts print it (then x100, unrounded)."""
  return {"score": sum(r["score"] for r in rows) / len(rows) * 100 if rows else 0.0, "n": len(rows)}


register("longiclbench.fewnerd", _fewnerd, aggregate=_fewnerd_aggregate)
register("longiclbench.dialogue_re", _dialogue, aggregate=_dialogue_aggregate)
register("longiclbench.label_em", _label_metric("banking77"), aggregate=_accuracy)
register("longiclbench.goemotion", _label_metric("goemotion"), aggregate=_accuracy)
register("longiclbench.discovery", _label_metric("discovery"), aggregate=_accuracy)
register("longiclbench.tacred", _tacred, aggregate=_tacred_aggregate)
