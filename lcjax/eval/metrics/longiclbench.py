"""LongICLBench official metrics (TIGER-AI-Lab/LongICLBench `*_infer.py` parsing, `fewnerd_evaluate.py`,
`dialogueRE_evaluate.py`).

- Classification tasks (banking77, tacred, goemotion, discovery): exact match of the parsed label.
- Few-NERD: the response is parsed into {entity: type} lines ("Entity: Type") after the test sentence; micro
  precision / recall over all sentences with 1e-8 smoothing; F1 = 2PR / (P + R).
- DialogRE: predicted relations are the comma-split answer; a prediction counts towards precision if it contains
  any known relation name; position i is correct if the label equals or is contained in the i-th prediction; the
  running F1 stops once 500 labels have been seen (the official early `break`).
"""

from __future__ import annotations

from typing import Sequence

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


def _label_em(prediction: str, reference: str, **kwargs) -> float:
  """Exact match of the label parsed after "<label prefix>" up to the next query marker."""
  marker = kwargs.get("query_marker", "service query")
  return float(prediction.split(marker)[0].strip() == reference)


register("longiclbench.fewnerd", _fewnerd, aggregate=_fewnerd_aggregate)
register("longiclbench.dialogue_re", _dialogue, aggregate=_dialogue_aggregate)
register("longiclbench.label_em", _label_em)
