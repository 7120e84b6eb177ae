"""LLM-judge routes of L-Eval and LooGLE through one `Judge` interface.

A `Judge` is any callable `(messages, max_new_tokens) -> reply text`, messages being chat turns
[{"role": "system"|"user"|"assistant", "content": str}]. The official scripts call GPT-4 through the OpenAI API;
here the default judge is an lcjax model (`model_judge`: the bundled SmolLM2 via `lcjax.checkpoint.load_pretrained`,
greedy decoding with its chat template), and any other callable (an API client, a bigger local model) can be
passed instead. The prompts, verdict parsing and aggregation are the official ones:

- L-Eval (OpenLMLab/LEval @cd34b05 `Evaluation/llm_eval.py`): pairwise comparison with a human reference answer
  ("pair-v2" system prompt and template), played twice with the answers swapped; "[[A]]" / "[[B]]" / "[[C]]"
  (tie) are read in that order, anything else is "error"; errors are dropped and each model's win rate is
  (wins + 0.5 * ties) / (decisions + ties). The official judge decodes at temperature 0 with up to 2048 tokens.
  `leval_judge_files` runs it on two prediction files (rows paired by query + gt, open-ended rows only).
- LooGLE (bigai-nlco/LooGLE @6734382 `Evaluation/llm_score.py`, `llm_eval.py`): QA asks whether the prediction
  and the ground truth are semantically the same ("True"/"False"); accuracy = replies equal to "True" over replies
  equal to "True" or "False". Summaries get a 0-100 score, averaged. Deliberate difference: the official code
  calls int() on the summary reply and crashes on anything else; lcjax reads the first integer and counts a reply
  without one as an error (excluded from the mean).
"""

from __future__ import annotations

import re
from typing import Callable, Protocol, Sequence

from lcjax.errors import ConfigError


class Judge(Protocol):
  """(chat messages, max_new_tokens) -> the judge's reply."""

  def __call__(self, messages: Sequence[dict], max_new_tokens: int) -> str: ...


LEVAL_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the "
    "user question about the content of a long document.  You will be given a reference answer written by human, "
    "assistant A's answer, and assistant B's answer. Your job is to evaluate which assistant's answer is better. "
    "Begin your evaluation by comparing both assistants' answers with the reference answer. Additional details or "
    "information that are not mentioned in reference answer cannot be considered as advantages and do not let them "
    "sway your judgment. Your evaluation should also consider the relevance to user's question but it is more "
    "important to avoid factual errors according to the reference answer. Avoid any position biases and ensure that "
    "the order in which the responses were presented does not influence your decision. Do not allow the length of "
    "the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective as "
    "possible. After providing your explanation, output your final verdict by strictly following this format: "
    "\"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.")
LEVAL_TEMPLATE = ("[User Question]\n{question}\n\n[The Start of Reference Answer]\n{ref_answer}\n[The End of Reference "
                  "Answer]\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
                  "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]")
LEVAL_MAX_TOKENS = 2048
LOOGLE_QA_SYSTEM = ("Given one question, there is a groundtruth and a predict_answer. Please decide whether they are "
                    "the same or not in semantic. Please only output 'True' or 'False' .")
LOOGLE_SUMMARY = ("There is a groundtruth summary of a arxiv paper and a auto-generated summary .Please Compare "
                  "generated summary with the goundtruth and evaluate the generated summary from the perspectives of "
                  "information completeness, consistency, fluency, and grammar by giving a score within the range of "
                  "0 to 100. \nGroundtruth = {} \nGenerated = {} \nScore = ")
LOOGLE_MAX_TOKENS = 10


def leval_verdict(judgment: str) -> str:
  """"A", "B", "tie" or "error" from an L-Eval judgment ("[[A]]" checked first, then "[[B]]", then "[[C]]")."""
  for mark, verdict in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
    if mark in judgment:
      return verdict
  return "error"


def leval_pair(judge: Judge, question: str, ref_answer: str, answer_a: str, answer_b: str,
               max_new_tokens: int = LEVAL_MAX_TOKENS) -> tuple[str, str]:
  """(verdict, judgment) of one `run_judge_pair` call."""
  messages = [{"role": "system", "content": LEVAL_SYSTEM},
              {"role": "user", "content": LEVAL_TEMPLATE.format(question=question, answer_a=answer_a,
                                                                 answer_b=answer_b, ref_answer=ref_answer)}]
  judgment = judge(messages, max_new_tokens)
  return leval_verdict(judgment), judgment


def leval_match(judge: Judge, question: str, ref_answer: str, answer_1: str, answer_2: str,
                max_new_tokens: int = LEVAL_MAX_TOKENS) -> list[str]:
  """`play_a_match_pair`: the two games' winners as "model_1" / "model_2" / "tie" / "error" (game 2 swaps the
  answers)."""
  g1, _ = leval_pair(judge, question, ref_answer, answer_1, answer_2, max_new_tokens)
  g2, _ = leval_pair(judge, question, ref_answer, answer_2, answer_1, max_new_tokens)
  return [{"A": "model_1", "B": "model_2"}.get(g1, g1), {"A": "model_2", "B": "model_1"}.get(g2, g2)]


def leval_win_rates(outcomes: Sequence[str]) -> dict:
  """`calculate_win_rate` over every game's winner: errors dropped, a tie counts half for each model.

  Returns:
    {"win_rate/<model>": (wins + 0.5 * ties) / (games without error), "ties", "errors"}.
  """
  stats = {"tie": 0, "error": 0}
  for o in outcomes:
    stats[o] = stats.get(o, 0) + 1
  errors, ties = stats.pop("error"), stats.pop("tie")
  total = sum(stats.values()) + ties
  out = {f"win_rate/{k}": (0.5 * ties + v) / total for k, v in stats.items()} if total else {}
  return {**out, "ties": ties, "errors": errors}


def _pred_key(row: dict) -> str:
  return next(k for k in row if "_pred" in k)


def _open_ended(rows: Sequence[dict]) -> list[dict]:
  """`read_jsonl`'s filter: when a file has rouge / f1 rows, only those are judged."""
  kinds = {r.get("evaluation") for r in rows}
  return [r for r in rows if r.get("evaluation") in ("rouge", "f1")] if kinds & {"rouge", "f1"} else list(rows)


def leval_judge_files(pred_rows: Sequence[dict], battle_rows: Sequence[dict], judge: Judge,
                      max_new_tokens: int = LEVAL_MAX_TOKENS) -> dict:
  """`llm_eval.py` on two prediction files: rows paired by query + gt (`construct_pairs`), two games per pair,
  win rates of both models (named by their `<model>_pred` keys without "_pred")."""
  pred_rows, battle_rows = _open_ended(pred_rows), _open_ended(battle_rows)
  if not pred_rows or not battle_rows:
    raise ConfigError("L-Eval judge: both prediction files need rows")
  key_1, key_2 = _pred_key(pred_rows[0]), _pred_key(battle_rows[0])
  battle = {r["query"] + r["gt"]: r[key_2] for r in battle_rows}
  names = {"model_1": key_1.replace("_pred", ""), "model_2": key_2.replace("_pred", "")}
  outcomes = []
  for row in pred_rows:
    pair = str(row["query"]) + str(row["gt"])
    if pair in battle:
      games = leval_match(judge, row["query"], row["gt"], row[key_1], battle[pair], max_new_tokens)
      outcomes += [names.get(g, g) for g in games]
  return {**leval_win_rates(outcomes), "games": len(outcomes)}


def loogle_judge(judge: Judge, question: str, reference: str, hypothesis: str, task: str) -> str | int | None:
  """`get_gpt4_score`: the QA reply text (compared with "True"/"False" by `loogle_accuracy`), or the summary score
  (the reply's first integer; None when it has none)."""
  if "qa" in task:
    messages = [{"role": "system", "content": LOOGLE_QA_SYSTEM},
                {"role": "user", "content": f"Question: {question}\ngroudtruth = {reference}\npredict_answer = "
                                            f"{hypothesis}"}]
    return judge(messages, LOOGLE_MAX_TOKENS)
  reply = judge([{"role": "system", "content": LOOGLE_SUMMARY.format(reference, hypothesis)}], LOOGLE_MAX_TOKENS)
  found = re.search(r"-?\d+", reply)
  return int(found.group(0)) if found else None


def loogle_accuracy(results: Sequence, task: str) -> float:
  """`get_accuracy`: QA: replies equal to "True" / replies equal to "True" or "False" (0 when there is none);
  summaries: the mean score (replies without a score excluded)."""
  if "qa" in task:
    true, false = sum(1 for r in results if r == "True"), sum(1 for r in results if r == "False")
    return true / (true + false) if true + false else 0.0
  scores = [r for r in results if r is not None]
  return sum(scores) / len(scores) if scores else 0.0


def model_judge(pretrained=None, name: str = "smollm2-135m") -> Callable[[Sequence[dict], int], str]:
  """The default judge: an lcjax model answering greedily through its chat template (dense KV cache).

  Args:
    pretrained: a loaded `lcjax.checkpoint.Pretrained`; None loads `name` with `load_pretrained`.
  """
  if pretrained is None:
    from lcjax.checkpoint import load_pretrained

    pretrained = load_pretrained(name)
  tok = pretrained.tokenizer
  if tok is None or not getattr(tok, "chat_template", None):
    raise ConfigError(f"judge model {name!r} has no tokenizer with a chat template")
  from lcjax.eval.runner import dense_backend

  generate = dense_backend(pretrained)

  def judge(messages: Sequence[dict], max_new_tokens: int) -> str:
    ids = tok.encode(tok.apply_chat_template(list(messages), add_generation_prompt=True))
    return tok.decode(generate(ids, max_new_tokens))

  return judge
