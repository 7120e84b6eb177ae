"""Regression tests of issue 24: differences from the official scorers found by differential testing, each with the
issue's example ("(prediction, reference): lcjax before vs official"), and the file-level L-Eval scores of real
prediction files (official numbers printed by `auto_eval.py` @cd34b05)."""

import json
import math
import os

import pytest

from lcjax.errors import ConfigError, DataError
from lcjax.eval.loaders.common import read_jsonl
from lcjax.eval.metrics import METRICS, leval, longproc, m4le, needlebench, scbench
from lcjax.eval.metrics.leval import score_prediction_file

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _score(name, prediction, reference, **kwargs):
  return METRICS.get(name).score(prediction, reference, **kwargs)["score"]


def _aggregate(name, pairs, **kwargs):
  m = METRICS.get(name)
  return m.aggregate([m.score(p, r, **kwargs) for p, r in pairs])


class TestSCBench:
  def test_choice_eng_official_label(self):  # item 1: ('A', answer 'Alice'): 0 before, 1 officially
    label = scbench.official_label({"answer": "Alice", "options": ["Alice", "Bob", "Carol", "Dan"]},
                                   "scbench_choice_eng")
    assert label == ["Alice", "A"]
    assert _score("scbench.score", "A", label, task="scbench_choice_eng") == 1.0
    assert _score("scbench.score", "The answer is Alice", label, task="scbench_choice_eng") == 1.0
    assert _score("scbench.score", "B", label, task="scbench_choice_eng") == 0.0
    with pytest.raises(DataError, match="'Eve' is not one of its options"):
      scbench.official_label({"answer": "Eve", "options": ["Alice", "Bob", "Carol", "Dan"]}, "scbench_choice_eng")

  def test_label_types_as_the_official_pipeline_uses_them(self):  # item 12
    # many_shot labels are strings and the official scorer iterates them: any one character found scores 1
    assert _score("scbench.score", "(C)", "(A)", task="scbench_many_shot") == 1.0
    assert _score("scbench.score", "xyz", "(A)", task="scbench_many_shot") == 0.0
    # qa_eng's label is [answer]: the whole answer must appear
    assert _score("scbench.score", "it was Bob", ["Bob Smith"], task="scbench_qa_eng") == 0.0
    # an integer passkey label is compared with the prediction's digit string: never equal, as officially
    assert _score("scbench.score", "71432", 71432, task="scbench_passkey") == 0.0
    assert _score("scbench.score", "key 71432.", "71432", task="scbench_passkey") == 1.0
    # math_find: int labels compare int(float(first number)); strings are not accepted officially
    assert _score("scbench.score", "3.7", 3, task="scbench_mf") == 1.0
    with pytest.raises(DataError, match="math_find label '3' is a str"):
      _score("scbench.score", "3", "3", task="scbench_mf")
    # a string vt label is iterated character by character: 2 of the 3 characters of "a-b" are in "A B"
    assert scbench.vt("A B", "a-b") == 0.67

  def test_three_decimal_per_turn_aggregate(self):  # item 11: 4/15 -> 26.667 (not 26.67)
    pairs = [("v", "v")] * 4 + [("x", "v")] * 11
    m = METRICS.get("scbench.score")
    rows = [m.score(p, r, task="scbench_kv", turn=0) for p, r in pairs] + [m.score("v", "v", task="scbench_kv",
                                                                                    turn=1)]
    out = m.aggregate(rows)
    assert out["turn_0"] == 26.667 and out["turn_1"] == 100.0 and out["score"] == 31.25


class TestLEval:
  @pytest.mark.parametrize("name,expected", [
      ("exam_eval_Claude-100k_codeU.pred.jsonl", 17.7778), ("exam_eval_turbo-16k-0613_codeU.pred.jsonl", 12.2222)])
  def test_codeu_files(self, name, expected):  # item 3 (bundled official prediction files)
    rows = read_jsonl(os.path.join(FIXTURES, "leval_predictions", name))
    assert score_prediction_file(rows, name) == {"metric": "exam", "score": expected, "n": 90}

  def test_real_codeu_and_topic_retrieval_files(self, shared_data):  # items 3 and 5
    folder = os.path.join(shared_data, "leval", "predictions")
    code = score_prediction_file(read_jsonl(os.path.join(folder, "exam_eval_gpt4-32k_codeU.pred.jsonl")),
                                 "exam_eval_gpt4-32k_codeU.pred.jsonl")
    assert code["score"] == 25.5556
    name = "exam_eval_Claude-100k_topic_retrieval_longchat.pred.jsonl"
    topic = score_prediction_file(read_jsonl(os.path.join(folder, name)), name)
    assert topic["parts"] == [100.0, 96.0, 16.0] and topic["score"] == 70.66666666666667

  def test_code_processing(self):
    # whitespace squeezed, "," and ".0" dropped, "is" removed, gold words + 3 after "the final output"
    assert leval.process_gt_code("[6,  15.0]") == "[6 15]"
    # the split after "the final output" starts with an empty word, which counts towards the gold length + 3
    assert leval.process_output_code("So the final output is [6, 15] and that is all", "[6 15]") == \
        " [6 15] and that"
    assert _score("leval.exam_code", "Step 1 ...\nthe final output is [6, 15]", ["[6 15]"]) == 100.0

  def test_sci_fi_both_halves(self):  # item 4
    assert leval.process_output_judge("It is True. [fact: false]") == ["true", "false"]
    assert leval.process_output_judge("True") is None
    rows = [(p, ["True [fact: False]"]) for p in ("True [fact: False]", "true [fact: true]", "False [fact: x]")]
    out = _aggregate("leval.sci_fi", rows)
    # loyalty 2/3, fact 1/3 (the last fact half is "<error>") -> 66.6667 and 33.3333, mean 50.0
    assert (out["loyalty"], out["fact"], out["score"]) == (66.6667, 33.3333, 50.0)
    rows = [{"gt": "True [fact: False]", "m_pred": p, "evaluation": "exam"} for p in ("True [fact: False]", "True")]
    assert score_prediction_file(rows, "sci_fi.pred.jsonl")["parts"] == [50.0, 50.0]

  def test_topic_per_position_mean(self):  # item 5: per-position means rounded to 4, their mean is not
    rows = [({"position": i % 3}, "x" if i in (3, 4) else "topic") for i in range(9)]
    m = METRICS.get("leval.topic_retrieval")
    out = m.aggregate([m.score(p, ["topic"], **kw) for kw, p in rows])
    assert out["parts"] == [66.6667, 66.6667, 100.0] and out["score"] == (66.6667 * 2 + 100) / 3

  def test_exam_em_versions(self):  # item 6: ('ab\n-7', ['-7']): 100 now, 0 in the Aug 2023 em.py
    assert leval.exam_em("ab\n-7", ["-7"]) == 100.0
    assert leval.exam_em("ab\n-7", ["-7"], em_version="2023-08") == 0.0
    assert _score("leval.exam", "ab\n-7", ["-7"], em_version="2023-08") == 0.0
    with pytest.raises(ConfigError, match="em_version '2024'"):
      leval.exam_em("x", ["x"], em_version="2024")

  def test_em_version_through_the_loader_option(self, shared_data):
    from lcjax.eval import TASKS, SampleSpec

    spec = SampleSpec(data_path=os.path.join(shared_data, "leval"), num_samples=1, options={"em_version": "2023-08"})
    assert TASKS.get("leval.tpo").examples(spec)[0].metric_kwargs["em_version"] == "2023-08"
    kwargs = {"position": 0, "em_version": "2023-08"}
    assert _score("leval.topic_retrieval", "xy\nThe role of art", ["The role of art"], **kwargs) == 0.0
    assert _score("leval.topic_retrieval", "xy\nThe role of art", ["The role of art"], position=0) == 100.0


class TestNeedleBench:
  def test_parallel_same_depth_adds_up(self):  # item 7: kws [蓝色, Lane] at depths [10, 10], pred 蓝色: 100
    out = _aggregate("needlebench.parallel", [("蓝色", {"keywords": ["蓝色", "Lane"], "depths": [10, 10]})])
    assert out["Depth10"] == 100.0 and out["score"] == 100.0
    assert needlebench.parallel_scores(["蓝色 Lane"], [["蓝色", "Lane"]], [10, 10])["Depth10"] == 200.0

  def test_v2_origin_no_partial_credit(self):  # item 7: v2 beside v1
    ref = {"needle": "Hidden on Emerald Island is the legendary Stardust Shard.", "keyword": "Stardust Shard"}
    assert _score("needlebench.origin", "Emerald", ref) > 0
    assert _score("needlebench_v2.origin", "Emerald", ref) == 0.0
    assert _score("needlebench_v2.origin", "the Stardust Shard", ref) == 100.0
    assert _score("needlebench_v2.multi", "so \\boxed{Ann Lee}", "Ann Lee") == 100.0


def test_m4le_cls_f1_cuts_only_the_response():  # item 8: ('Music', 'Music.'): 0 officially for mnds / thucnews
  kw = dict(metric="cls_f1", sep=",", end=".")
  assert _score("m4le.score", "Music", ["Music."], **kw) == 0.0
  assert _score("m4le.score", "Music. Sports", ["Music"], **kw) == 1.0
  assert _score("m4le.score", "Music", ["Music."], cut_answer=True, **kw) == 1.0  # marc_preprocess cuts both
  assert m4le.split_labels("b, a. c", ",", None) == ["a. c", "b"]


def test_longiclbench_label_parsing():  # item 9: ('CARD_ARRIVAL', 'card_arrival'): 1 officially
  assert _score("longiclbench.label_em", "CARD_ARRIVAL", "card_arrival", text="where is my card?") == 1.0
  resp = "service query: where is my card?\nintent category: Card_Arrival\nservice query: next"
  assert _score("longiclbench.label_em", resp, "card_arrival", text="where is my card?") == 1.0
  assert _score("longiclbench.goemotion", "Joy\ncomment: x", "joy", text="I love it") == 1.0
  assert _score("longiclbench.goemotion", "I love it\nemotion category: Joy comment: y", "joy", text="I love it") == 1.0
  assert _score("longiclbench.discovery", '"However,"', "however", text="Second sentence.") == 1.0
  m = METRICS.get("longiclbench.tacred")
  labels = ["per:title", "no_relation"]
  rows = [m.score(p, g, text="s", labels=labels) for p, g in (("per:title", "per:title"), ("Per:title", "per:title"),
                                                               ("junk", "no_relation"))]
  out = m.aggregate(rows)  # case kept: 1 correct of 3 labels, 1 of 1 valid predictions
  p, r = 1 / (1 + 1e-8), 1 / (3 + 1e-8)
  assert out["score"] == pytest.approx(100 * 2 * p * r / (p + r + 1e-8))


class TestLongProc:
  def test_tom_tracking_keeps_every_dash_line(self):  # item 2
    gold = "- Step 0: Bob thinks the ball is in the box\n- Step 1: Bob thinks the ball is in the bag"
    upper = gold.replace("Step", "STEP").replace("Bob thinks", "BOB THINKS")
    assert longproc.eval_tom_tracking(upper, gold)["accuracy"] == 1.0
    assert longproc.eval_tom_tracking(gold + "\n- note: done", gold)["accuracy"] == 0.0
    # no cut at the last "- Step 0:": a restarted trace is compared from the top
    assert longproc.eval_tom_tracking("- Step 0: x\n" + gold, gold)["partial_accuracy"] == 0.0

  def test_html_to_tsv_column_mismatch_is_an_error(self):  # item 10
    gt = "name\tage\nBob\t3"
    out = longproc.eval_html_to_tsv("```tsv\nname\tage\tcity\nBob\t3\tX\n```", gt)
    assert out["f1"] == 0.0 and out["extraction_rate"] == 0.0
    assert longproc.eval_html_to_tsv("```tsv\nname\tage\nBob\t3\n```", gt)["extraction_rate"] == 1.0


def test_ruler_and_longbench_e_aggregation_order():  # item 11
  rows = [{"score": 1.0}] * 23 + [{"score": 0.0}] * 137
  assert METRICS.get("ruler.string_match_all").aggregate(rows)["score"] == 14.37  # 23/160*100, not 100*23/160
  scores = [0.2, 1.0, 0.0, 0.25, 0.1, 0.1, 0.5, 0.2]  # np.mean: 29.37; sum / n: 29.38
  m = METRICS.get("longbench_e.hotpotqa")
  out = m.aggregate([{"score": s, "length": 100} for s in scores])
  assert out["0-4k"] == 29.37 and out["score"] == 29.37
  assert m.score("Paris", ["Paris"], length=5000) == {"score": 1.0, "length": 5000}


def test_fixture_files_are_json_lines():
  for name in os.listdir(os.path.join(FIXTURES, "leval_predictions")):
    if name.endswith(".jsonl"):
      with open(os.path.join(FIXTURES, "leval_predictions", name)) as f:
        assert all(json.loads(line)["evaluation"] == "exam" for line in f)


def test_runner_appends_the_document_free_fact_answer(tokenizer, shared_data):  # item 4 through the runner
  from lcjax.eval import TASKS, SampleSpec
  from lcjax.eval.runner import evaluate_one

  task = TASKS.get("leval.sci_fi")
  ex = task.examples(SampleSpec(data_path=os.path.join(shared_data, "leval"), num_samples=1))[0]
  prompts = []

  def generate(ids, budget):
    prompts.append(tokenizer.decode(ids))
    return tokenizer.encode("True" if len(prompts) == 1 else "False")

  out = evaluate_one(task, ex, generate, tokenizer, 10**7)  # no truncation needed
  assert out["prediction"] == "True [fact: False]" and out["score"] == 100.0
  assert "real-world knowledge" in prompts[1] and len(prompts[1]) < 1000  # no document in the second prompt


def test_loogle_cloze_evaluates_literals_only():  # deliberate difference: no eval of model output
  from lcjax.eval.metrics import loogle

  gold = {"<mask-0>": "New York", "<mask-1>": "5"}
  assert loogle.safe_eval("{'a': 'New ' + 'York', 'b': -1}") == {"a": "New York", "b": -1}
  assert loogle.safe_eval("__import__('os').getcwd()") is None and loogle.safe_eval("{'a': x}") is None
  assert loogle.cloze_exact("{'<mask-0>': 'New ' 'York', '<mask-1>': 5}", gold) == (1, 2)  # 5 != "5", as eval
  assert loogle.cloze_partial("{'<mask-0>': 'York', '<mask-1>': 5}", gold) == (2, 2)  # str(5): official raises


class TestSCBenchMissingScorers:
  def test_summary_is_rouge_lsum(self):
    # summary-level LCS over newline-separated sentences: ref "a b c" / "d e", pred "e d" / "a c": the union LCS
    # hits a, c (sentence 1) and one of d/e (sentence 2): R = 3/5, P = 3/4 (plain rougeL on the joined text: 2 hits)
    r, p = 3 / 5, 3 / 4
    assert scbench.summary("e d\na c", "a b c\nd e") == pytest.approx(2 * p * r / (p + r))
    assert _score("scbench.score", "e d\na c", "a b c\nd e", task="scbench_summary") == pytest.approx(2 / 3)

  def test_repoqa_and_kv_fixture(self):
    from lcjax.eval import TASKS, SampleSpec

    exs = TASKS.get("scbench.repoqa_and_kv").examples(
        SampleSpec(data_path=os.path.join(FIXTURES, "scbench"), num_samples=0))
    assert [e.max_new_tokens for e in exs] == [1024, 80, 1024]
    assert [n["name"] for n in exs[0].metric_kwargs["needles"]] == ["add", "mul"]
    m = METRICS.get("scbench.score")
    rows = [m.score(p, e.reference, **e.metric_kwargs) for p, e in zip(
        ["def add(a, b):\n    return a + b", "v1", "def add(a, b):\n    return a + b"], exs)]
    # turn 2 asks for mul: the most similar needle is add -> fail; pass@1 per subtask and turn, 3 decimals
    assert [r["score"] for r in rows] == [1.0, 1.0, 0.0] and rows[2]["best_target"] == "add"
    out = m.aggregate(rows)
    assert out["turn_0/scbench_repoqa"] == 100.0 and out["turn_2/scbench_repoqa"] == 0.0 and out["score"] == 66.667

  def test_repoqa_code_block_uses_the_first_function(self):
    pytest.importorskip("tree_sitter")
    pytest.importorskip("tree_sitter_python")
    from lcjax.eval.metrics import scbench_repoqa

    out = "Here it is:\n```python\nimport os\n\ndef mul(a, b):\n    return a * b\n\ndef add(a, b):\n    pass\n```"
    assert scbench_repoqa.sanitize_output(out, "python") == "def mul(a, b):\n    return a * b"
    assert scbench_repoqa.sanitize_output("```\nx = 1\n```", "python") == "x = 1\n"  # no function: the block
    needles = [{"name": "add", "needle": "def add(a, b):\n    return a + b"},
               {"name": "mul", "needle": "def mul(a, b):\n    return a * b"}]
    match = scbench_repoqa.needle_match(out, "mul", needles, "python")
    assert match["is_best_similar"] and match["best_similarity"] == pytest.approx(1.0)
    assert scbench_repoqa.pass_at_1([match, dict(match, best_similarity=0.79)]) == 0.5

  def test_summary_with_needles_fixture(self):
    from lcjax.eval import TASKS, SampleSpec

    exs = TASKS.get("scbench.summary_with_needles").examples(
        SampleSpec(data_path=os.path.join(FIXTURES, "scbench"), num_samples=0))
    m = METRICS.get("scbench.score")
    rows = [m.score(p, e.reference, **e.metric_kwargs) for p, e in zip(["a cat sat on the mat\nthe end", "71432"],
                                                                         exs)]
    out = m.aggregate(rows)
    assert out["turn_0/scbench_summary"] == 100.0 and out["turn_1/scbench_passkey"] == 100.0
    assert [e.max_new_tokens for e in exs] == [800, 15]


def test_citeeval_summary_rouge_l():
  from lcjax.eval.metrics import citeeval

  assert citeeval.summary_answer("Summary: the cat sat [1][2].\nThe end [3].") == "the cat sat."
  assert citeeval.summary_answer("The summary is short") is None  # no ":": skipped, counts as 0
  assert _score("citeeval.summary", "Summary: the cat sat [1].", {"answer": "the cat sat"}) == pytest.approx(1.0)
  # pltrdy ROUGE-L F (unique words): hyp {the, cat}, ref {the, cat, sat}: P = 1, R = 2/3
  assert citeeval.summary_correctness("the cat", ["the dog", "the cat sat"]) == pytest.approx(0.8, abs=1e-7)
  assert _score("citeeval.summary", "[1]", {"answer": "x"}) == 0.0  # empty after removing citations
  rows = [{"score": 1.0, "correctness": 1.0}, {"score": 0.0, "correctness": 0.0}, {"score": 0.0, "correctness": 0.0}]
  assert METRICS.get("citeeval.summary").aggregate(rows)["score"] == 33.33


def test_loco_ndcg_through_pytrec_eval_as_beir():
  pytest.importorskip("pytrec_eval")
  from lcjax.eval.metrics import retrieval

  qrels = {"q1": {"d1": 1, "d3": 2}, "q2": {"d2": 1}, "q3": {"d9": 1}}
  run = {"q1": {"d1": 0.5, "d2": 0.5, "d3": 0.1, "q1": 9.0}, "q2": {"d2": 0.2, "d1": 0.9}, "q4": {"d1": 1.0}}
  ours = retrieval.beir_ndcg(qrels, run, (1, 3), backend="python")
  theirs = retrieval.beir_ndcg(qrels, run, (1, 3), backend="pytrec_eval")
  assert ours == theirs
  # q1: ranking d2, d1, d3 (tie: id descending; q1 itself dropped): DCG@3 = 1/log2(3) + 2/2, IDCG = 2 + 1/log2(3)
  import math
  q1 = (1 / math.log2(3) + 1) / (2 + 1 / math.log2(3))
  q2 = 1 / math.log2(3)
  assert theirs["NDCG@3"] == round((q1 + q2) / 2, 5) and theirs["NDCG@1"] == 0.0


class TestM4LEMissingScorers:
  def test_bleu_tokenizers(self):
    from lcjax.eval.metrics import m4le as mod

    assert mod.bleu_tokens("Hello, world. 3.5 the-end &amp; x") == ["Hello", ",", "world", ".", "3.5", "the-end", "&",
                                                                    "x"]
    # the official range literal "\u20000" makes U+2001..U+2A6D "Chinese": the em dash becomes its own token
    assert mod.bleu_tokens("我爱a—b", "zh") == ["我", "爱", "a", "—", "b"]

  def test_corpus_bleu_per_bucket(self):
    # "the cat sat on a mat" vs "the cat sat on the mat": p1..p4 = 5/6, 3/5, 2/4, 1/3, no brevity penalty
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    m = METRICS.get("m4le.score")
    rows = [m.score("the cat sat on a mat", ["the cat sat on the mat"], metric="bleu", bucket=1000),
            m.score("x y", ["a b c d"], metric="bleu", bucket=2000)]
    out = m.aggregate(rows)
    assert out["bucket_1000"] == pytest.approx(expected) and out["bucket_2000"] == 0.0
    # corpus level over both: matches 5+0 / 6+2, 3/5+1, 2/4, 1/3; lengths 8 vs 10 -> brevity exp(1 - 10/8)
    corpus = (5 / 8 * 3 / 6 * 2 / 4 * 1 / 3) ** 0.25 * math.exp(1 - 10 / 8)
    assert out["score"] == pytest.approx(100 * corpus)

  def test_bleu_of_empty_predictions_is_zero(self):  # deliberate: the official 1.0 / ratio divides by zero
    assert METRICS.get("m4le.score").score("", ["a b"], metric="bleu")["score"] == 0.0

  def test_single_acc_pools_counts(self):
    m = METRICS.get("m4le.score")
    rows = [m.score("ab", ["a", "c"], metric="single_acc", bucket=1), m.score("x", ["x", "y", "z"], metric="single_acc",
                                                                             bucket=1)]
    assert m.aggregate(rows)["bucket_1"] == pytest.approx(2 / 5)  # (1 + 1) / (2 + 3), characters of the response


class TestTravelPlanning:
  ITEMS = os.path.join(FIXTURES, "longproc_travel", "travel_planning_icl_examples.json")

  def _items(self):
    with open(self.ITEMS) as f:
      return json.load(f)

  def test_demonstration_reproduces_the_official_plans(self):
    from lcjax.eval.metrics import longproc_travel as tp

    for item in self._items():  # the official builder asserts its plan equals the item's ground-truth plan
      demo = tp.build_travel_plan_demonstration(item)
      plan = demo.split("<Plan>\n")[1].split("\n</Plan>")[0]
      assert plan == item["ground_truth_plan"].split("\n\n")[1].strip()
      ref = {k: item[k] for k in ("ground_truth_cities", "ground_truth_durations")}
      assert _score("longproc.travel_planning", demo, {**ref, "reference_output": demo}) == 1.0

  def test_parse_and_partial(self):
    from lcjax.eval.metrics import longproc_travel as tp

    item = self._items()[0]
    assert tp.parse_plan(item["ground_truth_plan"]) == [("Helsinki", 5), ("Barcelona", 5), ("Florence", 6)]
    ref = {"ground_truth_cities": item["ground_truth_cities"], "ground_truth_durations": item["ground_truth_durations"],
           "reference_output": tp.build_travel_plan_demonstration(item)}
    wrong = ref["reference_output"].replace("Fly from Barcelona to Florence", "Fly from Barcelona to Rome")
    out = tp.eval_travel_planning(wrong, ref)
    assert out["accuracy"] == 0.0 and out["extraction_rate"] == 1.0
    gold_lines = [x for x in ref["reference_output"].replace("Output the plan in the required format:", "").split("\n")
                  if x.strip()]
    first_bad = next(i for i, x in enumerate(gold_lines) if "Fly from Barcelona to Florence" in x)
    assert out["partial_accuracy"] == pytest.approx(first_bad / len(gold_lines))
    assert tp.eval_travel_planning("no plan", ref) == {"accuracy": 0.0, "partial_accuracy": 0.0,
                                                        "extraction_rate": 0.0}


class TestNeedleBenchATC:
  def test_first_option_postprocess(self):
    from lcjax.eval.metrics.needlebench_choice import first_option_postprocess as fop

    assert fop("The answer is (C).") == "C"
    assert fop("答案是B") == "B"
    assert fop("I think option D: Ann") == "D"  # " D:" by the "(\s|^)[ABCD][\s...:]" pattern
    assert fop("故选A只有B是对") == "A"  # the fused "故选...只有...是对" pattern (official missing comma)
    assert fop("none of them") == ""
    assert fop("xyz Answer: b") == "A"  # (?i) lets "b" match but "b" is no option; the cushion finds Answer's "A"

  def test_circular_evaluator(self):
    m = METRICS.get("needlebench.atc_choice")
    # question 0: gold option is the original A; right in all four rotations. Question 1: right only in ABCD.
    golds = {"ABCD": "A", "BCDA": "D", "CDAB": "C", "DABC": "B"}
    rows = [m.score(f"The answer is {golds[c]}", f"0--{golds[c]}--{c}") for c in ("ABCD", "BCDA", "CDAB", "DABC")]
    rows += [m.score("The answer is A" if c == "ABCD" else "The answer is A", f"1--{golds[c]}--{c}")
             for c in ("ABCD", "BCDA", "CDAB", "DABC")]
    out = m.aggregate(rows)
    assert out["acc_4"] == pytest.approx(5 / 8 * 100) and out["acc_1"] == pytest.approx(2 / 8 * 4 * 100)
    assert out["perf_4"] == 50.0 and out["score"] == 50.0 and out["more_4_1"] == 100.0 and out["perf_1"] == 100.0
    # question 1 always says "A": mapped back, A, B, C, D once each -> the vote's most common is "A" (first seen)
    assert out["vote_4"] == 100.0 and out["prior_A"] == pytest.approx(5 / 8 * 100)

  def test_atc_v1_is_the_origin_evaluator(self):
    assert _score("needlebench.atc_v1", "It is Ann Lee.", "Ann Lee") == 100.0
    assert _score("needlebench.atc_v1", "Ann", "Ann Lee") == pytest.approx(0.2 * 100 * 3 / 6)


def test_longproc_and_loogle_aggregation():  # item 11 for LongProc (example_usage.py) and LooGLE (np.mean)
  import numpy as np

  m = METRICS.get("longproc.path_traversal")
  rows = [m.score("<Route>a</Route>", "a"), m.score("<Route>b</Route>", "a"), m.score("none", "a")]
  out = m.aggregate(rows)
  assert out["score"] == pytest.approx(100 / 3) and out["extraction_rate"] == pytest.approx(2 / 3)
  values = [0.2, 1.0, 0.0, 0.25, 0.1, 0.1, 0.5, 0.2]
  rows = [{"score": v, "rouge-1": v, "rouge-2": v, "rouge-l": v} for v in values]
  out = METRICS.get("loogle.rouge").aggregate(rows)
  assert out["rouge-l"] == float(np.mean(values)) and out["rouge-l"] != sum(values) / len(values)


def test_atc_accuracy_divides_first():
  m = METRICS.get("needlebench.atc")
  rows = [m.score("\\boxed{Ann}", "Ann"), m.score("x", "Ann"), m.score("y", "Ann")]
  assert m.aggregate(rows)["score"] == (1 / 3) * 100 != 100 / 3  # 33.33333333333333, not 33.333333333333336
