"""Loaders on the real bundled subsets in lcjax/assets/data (L-Eval, LooGLE, LongProc, LongICLBench, GSM8K) and on
small fixtures in the official schema (LongBench, M4LE, L-CiteEval, LoCoV1, SCBench, banking77); the real L-Eval
prediction files score as the official L-Eval code scores them; bad input gives clear errors."""

import json
import os
import shutil

import pytest

from lcjax.errors import DataError, UnknownNameError
from lcjax.eval import METRICS, TASKS, SampleSpec, build_prompt
from lcjax.eval.loaders.common import read_jsonl
from lcjax.eval.metrics.leval import score_prediction_file

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _examples(name, path, tok=None, n=0, **options):
  return TASKS.get(name).examples(SampleSpec(tokenizer=tok, data_path=path, num_samples=n, options=options))


def _oracle_score(name, prediction, ex):
  return METRICS.get(TASKS.get(name).metric).score(prediction, ex.reference, **ex.metric_kwargs)["score"]


# Expected numbers derived from the official definitions (auto_eval.py + em.py + SCROLLS f1/rouge): option letters
# by process_output_mc / process_gt_mc, exam EM with partial credit, 100 * mean, rounded to 4 decimals. They match
# the L-Eval paper's table (GPT-4-32k QuALITY 82.17, Turbo-16k TOEFL 78.43).
LEVAL_EXPECTED = {
    "exam_eval_gpt4-32k_quality.pred.jsonl": ("exam", 82.1782, 202),
    "exam_eval_turbo-16k-0613_tpo.pred.jsonl": ("exam", 78.4387, 269),
    "ngram_eval_turbo-16k-0613_financial_qa.pred.jsonl": ("f1", 45.3688, 52),
}


@pytest.mark.parametrize("name", sorted(LEVAL_EXPECTED))
def test_leval_prediction_files_score_as_official(shared_data, name):
  rows = read_jsonl(os.path.join(shared_data, "leval", "predictions", name))
  out = score_prediction_file(rows, name)
  assert (out["metric"], out["score"], out["n"]) == LEVAL_EXPECTED[name]


def test_leval_rouge_geometric_mean_on_real_predictions(shared_data):
  rows = read_jsonl(os.path.join(shared_data, "leval", "predictions",
                                 "ngram_eval_turbo-16k-0613_financial_qa.pred.jsonl"))
  out = score_prediction_file([dict(r, evaluation="rouge") for r in rows], "financial_qa")
  # rouge-score (no stemmer) F x 100 maxed over references, averaged: R1 48.3476, R2 28.4866, RL 36.2663.
  assert (out["rouge/rouge1"], out["rouge/rouge2"], out["rouge/rougeL"]) == (48.3476, 28.4866, 36.2663)
  assert out["score"] == round((48.3476 * 28.4866 * 36.2663) ** (1 / 3), 4)


def test_leval_loader_real_files(shared_data, tokenizer):
  exs = _examples("leval.tpo", os.path.join(shared_data, "leval"))
  assert len(exs) == 269 and exs[0].reference == ["A"] and "{document}" in exs[0].prompt
  assert _oracle_score("leval.tpo", "A. to study human form", exs[0]) == 100.0
  coursera = _examples("leval.coursera", os.path.join(shared_data, "leval"))
  multi = next(ex for ex in coursera if len(ex.reference[0]) > 1)
  assert _oracle_score("leval.coursera", multi.reference[0][:1], multi) == 25.0  # partial credit
  ids = build_prompt(TASKS.get("leval.tpo"), exs[0], tokenizer, max_input_tokens=1500)
  assert len(ids) < 1500 + 400  # document cut by L-Eval's word rule; the system prompt and chat template remain
  assert {ex.meta["evaluation"] for ex in _examples("leval.financial_qa", os.path.join(shared_data, "leval"))} == {"f1"}
  sci = _examples("leval.sci_fi", os.path.join(shared_data, "leval"))
  assert sci[0].reference[0] == "True [fact: False]" and sci[0].companion_format == " [fact: {}]"
  assert "real-world knowledge" in sci[0].companion.prompt and "{document}" not in sci[0].companion.prompt
  assert _oracle_score("leval.sci_fi", "True [fact: False]", sci[0]) == 100.0
  assert _oracle_score("leval.sci_fi", "True [fact: True]", sci[0]) == 50.0  # loyalty right, fact wrong
  assert _oracle_score("leval.sci_fi", "True", sci[0]) == 0.0  # no "[fact:": the official script crashes


def test_loogle_real_files(shared_data, tokenizer):
  qa = _examples("loogle.longdep_qa", os.path.join(shared_data, "loogle"))
  assert len(qa) > 5 and all(isinstance(ex.reference, str) for ex in qa)
  cloze = _examples("loogle.shortdep_cloze", os.path.join(shared_data, "loogle"))
  assert isinstance(cloze[0].reference, dict)
  assert _oracle_score("loogle.shortdep_cloze", str(cloze[0].reference), cloze[0]) == 1.0
  summ = _examples("loogle.longdep_summarization", os.path.join(shared_data, "loogle"))
  assert len(summ) == 2 and summ[0].prompt.startswith("Please generate a summary")
  ids = build_prompt(TASKS.get("loogle.longdep_qa"), qa[0], tokenizer, max_input_tokens=2000)
  assert len(ids) <= 2000 + 40  # middle truncation + chat template


@pytest.mark.parametrize("task", ["path_traversal", "tom_tracking", "countdown", "html_to_tsv", "pseudo_to_code"])
def test_longproc_real_files(shared_data, task):
  exs = _examples(f"longproc.{task}", os.path.join(shared_data, "longproc"), n=3)
  assert len(exs) == 3 and "{" not in exs[0].prompt[:20]
  if task == "path_traversal":
    assert _oracle_score("longproc.path_traversal", f"<Route>\n{exs[0].reference}\n</Route>", exs[0]) == 1.0
  if task == "tom_tracking":
    assert _oracle_score("longproc.tom_tracking", exs[0].reference, exs[0]) == 1.0
  if task == "countdown":
    assert _oracle_score("longproc.countdown", exs[0].reference["reference_output"], exs[0]) == 1.0
  if task == "html_to_tsv":
    assert _oracle_score("longproc.html_to_tsv", f"```tsv\n{exs[0].reference}\n```", exs[0]) == 1.0


def test_longiclbench_real_files(shared_data, tokenizer, tmp_path):
  exs = _examples("longiclbench.fewnerd", os.path.join(shared_data, "longiclbench"), tok=tokenizer, n=2, round=1)
  assert exs[0].meta["shots"] == 57 and exs[0].prompt.endswith("Sentence: " + exs[0].reference["sentence"] + "\n")
  gold = "\n".join(f"{e}: {t}" for e, t in exs[0].reference["entities"].items())
  rows = [METRICS.get("longiclbench.fewnerd").score(gold, ex.reference) for ex in exs]
  assert METRICS.get("longiclbench.fewnerd").aggregate(rows[:1])["score"] == pytest.approx(100.0)
  fitted = TASKS.get("longiclbench.fewnerd").examples(SampleSpec(
      tokenizer=tokenizer, length=2048, data_path=os.path.join(shared_data, "longiclbench"), num_samples=1))
  assert len(tokenizer.encode(fitted[0].prompt)) <= 2048
  shutil.copy(os.path.join(shared_data, "longiclbench", "test_dialogueRE.json"), tmp_path)
  shutil.copy(os.path.join(FIXTURES, "longiclbench", "train_dialogueRE_processed.json"), tmp_path)
  dre = _examples("longiclbench.dialogue_re", str(tmp_path), n=2, round=1)
  answer = ", ".join(dre[0].reference["relations"])
  assert dre[0].prompt.rstrip().endswith("are:")
  assert METRICS.get("longiclbench.dialogue_re").aggregate(
      [METRICS.get("longiclbench.dialogue_re").score(answer, dre[0].reference)])["score"] == pytest.approx(100, abs=1e-4)
  bank = _examples("longiclbench.banking77", os.path.join(FIXTURES, "banking77"))
  assert bank[0].reference == "age_limit" and _oracle_score("longiclbench.banking77", "age_limit\nservice query", bank[0])


def test_gsm8k_longgenbench(shared_data, tokenizer):
  (ex,) = TASKS.get("longgenbench.gsm8k").examples(SampleSpec(
      tokenizer=tokenizer, length=1024, data_path=os.path.join(shared_data, "gsm8k"), options={"num_questions": 3}))
  assert ex.reference[0] == float(ex.reference[0]) and "Question 3:" in ex.prompt and "Question 4:" not in ex.prompt


def test_longbench_fixture_prompts_and_scores(tokenizer):
  exs = _examples("longbench.hotpotqa", os.path.join(FIXTURES, "longbench"))
  assert exs[0].prompt.endswith("Question: Which city hosts the Louvre?\nAnswer:") and exs[0].reference == ["Paris"]
  assert _oracle_score("longbench.hotpotqa", "Paris", exs[0]) == 1.0
  trec = _examples("longbench.trec", os.path.join(FIXTURES, "longbench"))
  assert not TASKS.get("longbench.trec").chat and trec[0].metric_kwargs["all_classes"][1] == "City"
  assert _oracle_score("longbench.trec", "City\nQuestion: x", trec[0]) == 1.0
  ids = build_prompt(TASKS.get("longbench.trec"), trec[0], tokenizer, max_input_tokens=16)
  assert len(ids) <= 17  # middle truncation: first 8 + last 8 tokens (re-encoding may merge one pair)
  assert _examples("longbench_e.hotpotqa", os.path.join(FIXTURES, "longbench"))[0].meta["length"] == 5000


def test_other_fixtures():
  m4 = _examples("m4le.marc", os.path.join(FIXTURES, "m4le"))
  assert m4[0].max_new_tokens == 2000 and _oracle_score("m4le.marc", "1,5. Then", m4[0]) == 1.0
  assert _oracle_score("m4le.triviaqa", "Paris.", _examples("m4le.triviaqa", os.path.join(FIXTURES, "m4le"))[0]) == 1
  niah = _examples("citeeval.niah", os.path.join(FIXTURES, "citeeval"))
  assert "Passage [2]: The secret number is 42." in niah[0].prompt and "The door is red [2]." in niah[0].prompt
  assert _oracle_score("citeeval.niah", "The secret number is 42 [2].", niah[0]) == 1.0
  stars = _examples("citeeval.counting_stars", os.path.join(FIXTURES, "citeeval"))
  assert _oracle_score("citeeval.counting_stars", '{"little_penguin": [3, 5], "passage_id": [1, 3]}', stars[0]) == 1
  loco = _examples("loco.listwise", os.path.join(FIXTURES, "loco"))
  assert "[2] The team decided" in loco[0].prompt and _oracle_score("loco.listwise", "[2] > [1]", loco[0]) == 1.0
  kv = _examples("scbench.kv", os.path.join(FIXTURES, "scbench"))
  assert len(kv) == 2 and kv[1].history[-1] == {"role": "assistant", "content": "v1"}
  assert _oracle_score("scbench.kv", "v2", kv[1]) == 1.0
  choice = _examples("scbench.choice_eng", os.path.join(FIXTURES, "scbench"))
  assert "B. red" in choice[0].prompt and _oracle_score("scbench.choice_eng", "B", choice[0]) == 1.0
  # issue 24 item 1: the official label is [answer text, letter], so a letter answer scores ('A', 'Alice'): 1
  assert choice[1].reference == ["Alice", "A"] and _oracle_score("scbench.choice_eng", "A", choice[1]) == 1.0
  assert _oracle_score("scbench.choice_eng", "Alice", choice[1]) == 1.0


def test_bad_input_errors(tmp_path):
  with pytest.raises(UnknownNameError, match="unknown eval task 'nope'"):
    TASKS.get("nope")
  with pytest.raises(DataError, match="data file not found"):
    _examples("longbench.hotpotqa", str(tmp_path))
  with pytest.raises(DataError, match="needs its official data"):
    _examples("leval.tpo", None)
  problems = []
  rows = read_jsonl(os.path.join(FIXTURES, "malformed", "hotpotqa.jsonl"), problems)
  assert len(rows) == 2 and problems[0][1] == 2 and "hotpotqa.jsonl:2: malformed JSON line" in problems[0][2]
  with pytest.raises(DataError, match=r"hotpotqa.jsonl:2: malformed JSON line"):
    read_jsonl(os.path.join(FIXTURES, "malformed", "hotpotqa.jsonl"))
  spec = SampleSpec(data_path=os.path.join(FIXTURES, "malformed"), num_samples=0)
  assert [ex.reference for ex in TASKS.get("longbench.hotpotqa").examples(spec)] == [["Paris"], ["London"]]
  assert spec.problems and spec.problems[0][1] == 2
  (tmp_path / "hotpotqa.jsonl").write_text(json.dumps({"input": "x"}) + "\n")
  with pytest.raises(DataError, match="no field 'context'"):
    _examples("longbench.hotpotqa", str(tmp_path))
