"""The LLM-judge routes (L-Eval pairwise, LooGLE GPT-4 prompts) through the `Judge` interface: official prompts,
verdict parsing and aggregation with an injected judge, and one real call of the default lcjax judge."""

import pytest

from lcjax.eval import judge as J


def test_leval_pairwise_swaps_and_win_rate():
  seen = []

  def fake(messages, max_new_tokens):  # prefers whichever answer mentions "Paris"
    seen.append((messages, max_new_tokens))
    user = messages[1]["content"]
    a = user.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
    return "Explanation... [[A]]" if "Paris" in a else "[[B]]"

  games = J.leval_match(fake, "Capital of France?", "Paris", "It is Paris.", "Lyon")
  assert games == ["model_1", "model_1"]  # both orders pick the Paris answer: no position bias
  assert seen[0][0][0] == {"role": "system", "content": J.LEVAL_SYSTEM} and seen[0][1] == 2048
  assert "[The Start of Reference Answer]\nParis\n[The End of Reference Answer]" in seen[0][0][1]["content"]
  assert J.leval_verdict("[[C]]") == "tie" and J.leval_verdict("[[B]] [[A]]") == "A" and J.leval_verdict("?") == "error"
  # errors dropped; a tie counts half: model_1 (3 + 0.5) / 5, model_2 (1 + 0.5) / 5
  out = J.leval_win_rates(["model_1", "model_1", "model_1", "model_2", "tie", "error"])
  assert out["win_rate/model_1"] == pytest.approx(0.7) and out["win_rate/model_2"] == pytest.approx(0.3)
  assert out["errors"] == 1 and out["ties"] == 1


def test_loogle_qa_and_summary():
  replies = iter(["True", "False", "true", "Score: 85/100", "no idea"])
  fake = lambda messages, n: next(replies)  # noqa: E731
  qa = [J.loogle_judge(fake, "Q?", "A", "a", "longdep_qa") for _ in range(3)]
  assert J.loogle_accuracy(qa, "shortdep_qa") == 0.5  # "true" is neither "True" nor "False": not counted
  summ = [J.loogle_judge(fake, "", "ref", "hyp", "longdep_summarization") for _ in range(2)]
  assert summ == [85, None] and J.loogle_accuracy(summ, "longdep_summarization") == 85


@pytest.mark.slow
def test_default_judge_is_an_lcjax_model(smollm2):
  judge = J.model_judge(smollm2)
  reply = judge([{"role": "user", "content": "Say yes."}], 3)
  assert isinstance(reply, str) and 0 < len(smollm2.tokenizer.encode(reply)) <= 3
  assert J.leval_verdict(reply) in ("A", "B", "tie", "error")


def test_leval_judge_files_pairs_by_query_and_gt():
  mine = [{"query": "q1", "gt": "g1", "mine_pred": "good", "evaluation": "f1"},
          {"query": "q2", "gt": "g2", "mine_pred": "good", "evaluation": "f1"},
          {"query": "q3", "gt": "g3", "mine_pred": "x", "evaluation": "LLM"}]  # dropped: the file has f1 rows
  theirs = [{"query": "q1", "gt": "g1", "turbo_pred": "bad", "evaluation": "f1"}]  # q2 has no partner: skipped

  def fake(messages, n):
    a = messages[1]["content"].split("[The Start of Assistant A's Answer]\n")[1].split("\n")[0]
    return "[[A]]" if a == "good" else "[[B]]"

  out = J.leval_judge_files(mine, theirs, fake)
  assert out == {"win_rate/mine": 1.0, "ties": 0, "errors": 0, "games": 2}
