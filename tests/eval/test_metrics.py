"""Official metrics against hand-computed values, including the quirks of the official code."""

import math

import pytest

from lcjax.eval.metrics import METRICS
from lcjax.eval.metrics import citeeval, leval, longbench, longiclbench, longproc, loogle, m4le, needlebench
from lcjax.eval.metrics import retrieval, ruler, scbench, synthetic


class TestLongBench:
  def test_qa_f1_squad_normalisation(self):
    # "The cat sat." -> "cat sat" (article and punctuation removed) vs "cat": P = 1/2, R = 1.
    assert longbench.qa_f1_score("The cat sat.", "a cat") == pytest.approx(2 / 3)
    # punctuation goes before articles: "the-end" -> "theend", which is not the article "the".
    assert longbench.qa_f1_score("the-end", "end") == 0
    assert longbench.qa_f1_score("the the cat", "cat") == 1.0

  def test_qa_f1_zh_uses_jieba_words(self):
    # jieba: 我 / 爱 / 北京 / 天安门 vs 北京 / 天安门 -> 2 common, P = 2/4, R = 1.
    assert longbench.qa_f1_zh_score("我爱北京天安门。", "北京天安门") == pytest.approx(2 / 3)

  def test_count_and_retrieval_are_fractions_of_all_numbers(self):
    assert longbench.count_score("There are 3 or 4 paragraphs, I think 3", "3") == pytest.approx(2 / 3)
    assert longbench.count_score("no digits", "3") == 0.0
    assert longbench.retrieval_score("Paragraph 12, not Paragraph 2", "Paragraph 12") == 0.5
    assert longbench.retrieval_zh_score("段落5", "段落5") == 1.0

  def test_code_sim_first_code_line_and_fuzz_ratio(self):
    assert longbench.code_sim_score("\n```python\n# comment\nx = foo(1)\ny = 2", "x = foo(1)") == 1.0
    assert longbench.code_sim_score("abc", "abd") == 0.67  # fuzz.ratio = round(200 * 2 / 6) = 67

  def test_classification_quirks(self):
    classes = ["Human", "Human being", "Entity"]
    assert longbench.classification_score("Human being", "Human being", all_classes=classes) == 1.0
    # list.remove while iterating skips "AB": matches [AB, ABC] remain -> 1/2 (a clean loop would give 1).
    assert longbench.classification_score("ABC", "ABC", all_classes=["A", "AB", "ABC"]) == 0.5
    # no class named: the difflib fallback is dead code in the official script -> 0.
    assert longbench.classification_score("something else", "Entity", all_classes=classes) == 0.0

  def test_rouge_l_pltrdy_semantics(self):
    # pltrdy rouge 1.0.1 counts *unique* words (exclusive n-grams): m = n = |{the, cat, sat|is, on, mat}| = 5 and the
    # union LCS "the cat on the mat" as a set {the, cat, on, mat} = 4, so P = R = 4/5 (not 5/6 as with token counts);
    # F adds 1e-8 to the denominator.
    p = r = 4 / 5
    assert longbench.rouge_score("the cat sat on the mat", "the cat is on the mat") == pytest.approx(
        2 * p * r / (p + r + 1e-8), abs=1e-12)
    assert longbench.rouge_score("", "the cat") == 0.0  # "Hypothesis is empty" is swallowed

  def test_scorer_first_line_max_and_rounding(self):
    classes = ["Location", "Human"]
    assert longbench.score_example("trec", "Location\nHuman", ["Location"], classes) == 1.0
    assert longbench.score_example("hotpotqa", "Paris", ["London", "Paris"]) == 1.0
    assert longbench.scorer("hotpotqa", ["cat", "dog sat"], [["cat"], ["cow"]]) == 50.0
    e = longbench.scorer_e("hotpotqa", ["cat", "dog", "cat"], [["cat"], ["cat"], ["cat"]], [100, 5000, 4500])
    assert e["0-4k"] == 100.0 and e["4-8k"] == 50.0 and math.isnan(e["8k+"])
    assert METRICS.get("longbench.trec").score("Human\nx", ["Human"], all_classes=classes)["score"] == 1.0


class TestLEval:
  def test_exam_em_partial_credit_and_case(self):
    assert leval.exact_match_score("ABC", "ABC") == 1
    assert leval.exact_match_score("AB", "ABC") == 0.25  # subset of the correct options
    assert leval.exact_match_score("D", "ABC") == 0
    assert leval.exact_match_score("", "B") == 0.25  # the empty set is a subset: the official quirk
    assert leval.exact_match_score("b", "B") == 0  # no lowercasing in L-Eval's exam normalisation

  def test_exam_em_free_form(self):
    assert leval.exact_match_score("41.0", "41") == 1
    assert leval.exact_match_score("x\nThe answer is 42", "42") == 1  # first line longer than one char
    assert leval.exact_match_score("The Big Apple", "big apple") == 1
    assert leval.compute_exact_match(["AB", "C"], [["ABC"], ["C"]]) == 62.5

  def test_process_output_mc(self):
    assert leval.process_output_mc("  ") == "None"
    assert leval.process_output_mc("AB") == "AB"  # a substring of "ABCD" is kept
    assert leval.process_output_mc("BD") == "B"  # not a substring -> first option letter
    assert leval.process_output_mc("Definitely B") == "D"  # the D of "Definitely"
    assert leval.process_output_mc("AC", coursera=True) == "AC"
    assert leval.process_output_mc("B. because", coursera=True) == "B"
    assert leval.process_output_mc("none of them", coursera=True) == "A"  # random guess

  def test_process_gt_and_math(self):
    assert leval.process_gt_mc("(B) Their subconscious knew") == "B"
    assert leval.process_gt_mc("xyz") == "A"
    assert leval.process_math("so The answer is 1,234.") == "1234"
    assert leval.process_math("We get 12 apples and 7\n\nmore 99") == "7"

  def test_rouge_geometric_mean(self):
    rows = [leval._rouge("the cat sat", ["the cat sat"]), leval._rouge("a dog", ["the cat"])]
    agg = leval.rouge_aggregate(rows)
    assert agg["rouge/rouge1"] == 50.0 and agg["rouge/rouge2"] == 50.0 and agg["rouge/rougeL"] == 50.0
    assert agg["score"] == pytest.approx(50.0)


class TestLooGLE:
  def test_rouge_is_recall(self):
    out = loogle.rouge_recall("the cat", "the cat sat")
    assert out["rouge-1"] == pytest.approx(2 / 3) and out["rouge-l"] == pytest.approx(2 / 3)

  def test_cloze_exact_and_partial(self):
    gold = {"<mask-0>": "Bob", "<mask-1>": "Paris City"}
    assert loogle.cloze_exact("{'<mask-0>': 'Bob', '<mask-1>': 'Paris'}", gold) == (1, 2)
    assert loogle.cloze_partial("{'<mask-0>': 'Bob', '<mask-1>': 'Paris'}", gold) == (2, 2)
    assert loogle.cloze_exact("not a dict", gold) == (0, 2)
    agg = METRICS.get("loogle.cloze").aggregate([
        METRICS.get("loogle.cloze").score("{'<mask-0>': 'Bob'}", gold), METRICS.get("loogle.cloze").score("x", gold)])
    assert agg["score"] == 0.25  # pooled over the 4 masks


class TestNeedleBench:
  NEEDLE = "\nHidden on Emerald Island is the legendary Stardust Shard.\n"

  def test_levenshtein(self):
    assert needlebench.levenshtein_distance("kitten", "sitting") == 3

  def test_keyword_override_and_partial(self):
    assert needlebench.origin_score("I found the Stardust Shard!", self.NEEDLE, "Stardust Shard") == 100.0
    # "Emerald" is inside the 49-char whitespace-free needle: 42 deletions -> 0.2 * 100 * (1 - 42/49).
    assert needlebench.origin_score("Emerald", self.NEEDLE, "Stardust Shard") == pytest.approx(0.2 * 100 * 7 / 49)

  def test_multi_and_parallel(self):
    assert needlebench.multi_keyword_score("Marcus is the answer", "Marcus Walsh") == 50.0
    out = needlebench.parallel_scores(["A and B", "A"], [["A", "B"], ["A", "B"]], [10, 50])
    assert out == {"Depth10": 100.0, "Depth50": 50.0, "average_score": 75.0}

  def test_atc_boxed(self):
    assert needlebench.atc_score("so it is \\boxed{James Hill}.", "James Hill") == 100.0
    assert needlebench.atc_score("\\boxed{\\text{James Hill}}", "James Hill") == 100.0
    assert needlebench.atc_score("\\boxed{{James Hill}}", "James Hill") == 100.0
    assert needlebench.atc_postprocess("\\fbox{James Hill}") == "None"  # remove_boxed only knows \boxed{
    assert needlebench.atc_score("James Hill", "James Hill") == 0.0  # no box


class TestRulerLongIns:
  def test_string_match(self):
    assert ruler.string_match_all(["the numbers are 123 and 456"], [["123", "456", "789"]]) == 66.67
    assert ruler.string_match_part(["the numbers are 123 and 456"], [["123", "456", "789"]]) == 100.0
    assert ruler.string_match_all_one("ABC-def", ["abc-DEF"]) == 1.0
    assert ruler.postprocess_pred(" x\x01y \n") == "x\ny"

  def test_longins_set_f1(self):
    assert sorted(set(ruler.longins_extract("wrong: [1, 3] and [3]"))) == [1, 3]
    assert ruler.set_f1([1, 3], [3, 4]) == 0.5
    assert ruler.set_f1([], [1]) == 0.0
    assert METRICS.get("longins.f1").score("[3, 4]", [3, 4])["score"] == 1.0


class TestLongProc:
  def test_path_traversal_partial_quirk(self):
    gt = "a\nb\nc"
    assert longproc.eval_path_traversal("<Route>\na\nb\nc\n</Route>", gt)["accuracy"] == 1.0
    # the official counter is incremented after the break: a wrong last line still gives partial 1.0
    assert longproc.eval_path_traversal("<Route>a\nb\nx</Route>", gt) == {
        "accuracy": 0.0, "partial_accuracy": 1.0, "extraction_rate": 1.0}
    assert longproc.eval_path_traversal("<Route>a\nb</Route>", gt)["partial_accuracy"] == pytest.approx(2 / 3)
    assert longproc.eval_path_traversal("no tags", gt)["extraction_rate"] == 0.0

  def test_tom_tracking(self):
    gold = "- Step 0: Leon is in the playroom\n- Step 1: Leon moves to the pantry\n- Step 2: the band-aid is here"
    assert longproc.eval_tom_tracking(gold.replace("the ", ""), gold)["accuracy"] == 1.0  # articles normalised away
    wrong = gold.replace("pantry", "kitchen")
    assert longproc.eval_tom_tracking(wrong, gold) == {"accuracy": 0.0, "partial_accuracy": 1 / 3,
                                                       "extraction_rate": 1.0}

  def test_countdown(self):
    assert longproc.evaluate_countdown_final_solution([21, 16, 17, 26], 46, "21 + 16 = 37\n37 - 17 = 20\n26 + 20 = 46")
    assert not longproc.evaluate_countdown_final_solution([21, 16, 17, 26], 46, "21 + 16 = 37\n37 - 17 = 20")
    sol, demo = longproc.build_countdown_demonstration([40, 19, 23, 7], 29)
    ref = {"nums": [40, 19, 23, 7], "target": 29, "reference_output": demo}
    assert longproc.eval_countdown(demo, ref)["accuracy"] == 1.0
    half = demo.split("# Search Procedure")[1].split("\n")
    broken = "# Search Procedure" + "\n".join(half[:4]) + "\n |- Pick two numbers (0, 0) (numbers left: []). Try."
    assert 0 < longproc.eval_countdown(broken, ref)["partial_accuracy"] < 1

  def test_html_to_tsv_rows(self):
    gt = "name\tage\nBob\t3\nAl\t4"
    out = longproc.eval_html_to_tsv("```tsv\nname\tage\nbob\t3\nCarl\t5\n```", gt)
    assert (out["precision"], out["recall"], out["f1"]) == (0.5, 0.5, 0.5)

  @pytest.mark.slow
  def test_pseudo_to_code_compiles_and_runs(self):
    code = "```cpp\nint main() { int a, b; cin >> a >> b; cout << a + b << endl; return 0; }\n```"
    assert longproc.eval_pseudo_to_code(code, [[["1 2"], ["3"]]])["accuracy"] == 1.0
    assert longproc.eval_pseudo_to_code(code, [[["1 2"], ["4"]]])["accuracy"] == 0.0


class TestCiteEval:
  def test_niah_citation(self):
    docs = ["x", "the secret is 42", "y"]
    out = citeeval.niah_citation("The secret is 42 [2][3].\nmore [1]", "42", docs)
    assert out["recall"] == 1.0 and out["precision"] == 0.5 and out["f1"] == pytest.approx(2 / 3)
    assert citeeval.niah_citation("The secret is 42 [1].", "42", docs)["f1"] == 0.0

  def test_counting_stars(self):
    docs = ["The little penguin counted 3 ★ here", "noise", "The little penguin counted 5 ★ there"]
    gen = 'Sure: {"little_penguin": [3, 7], "passage_id": [1, 2, 2]}'
    out = citeeval.counting_stars_citation(gen, docs)
    assert (out["recall"], out["precision"], out["f1"]) == (0.5, 0.5, 0.5)
    assert citeeval.counting_stars_accuracy(gen, docs) == 0.5
    assert citeeval.counting_stars_citation("no json", docs)["f1"] == 0.0

  def test_autoais_with_pluggable_nli(self):
    docs = ["cats are mammals", "dogs bark loudly", "the sky is blue"]
    nli = lambda premise, claim: int(set(claim.lower().rstrip(".").split()) <= set(premise.lower().split()))  # noqa
    out = citeeval.autoais("Cats are mammals [1][3]. Dogs bark [2]. Fish fly [3].", docs, nli)
    # recall: sentences 1 and 2 entailed of 3; precision: [1] needed, [3] not (removing it keeps entailment), [2]
    # needed, sentence 3 cites [3] which does not entail -> 2 needed of 4 citations.
    assert out["recall"] == pytest.approx(2 / 3) and out["precision"] == 0.5 and out["cite_num"] == 4

  def test_qa_correctness_first_line_without_citations(self):
    assert citeeval.qa_correctness("Paris [1][2].\nLondon", "Paris")["f1"] == 1.0


class TestRetrieval:
  def test_trec_tie_break_and_ndcg(self):
    qrels = {"q1": {"d1": 1, "d3": 1}}
    run = {"q1": {"d1": 0.5, "d2": 0.5, "d3": 0.1}}  # tie: trec_eval ranks d2 before d1 (id descending)
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    out = retrieval.beir_ndcg(qrels, run, k_values=(1, 10))
    assert out["NDCG@1"] == 0.0 and out["NDCG@10"] == round(expected, 5)

  def test_identical_ids_dropped_and_listwise(self):
    assert retrieval.beir_ndcg({"q": {"d": 1}}, {"q": {"q": 9.0, "d": 1.0}}, (1,))["NDCG@1"] == 1.0
    scores = retrieval.listwise_scores("[2] > [2] > [9] > [1]", ["a", "b", "c"])
    assert scores == {"a": 2.0, "b": 3.0, "c": 0.0}

  def test_matches_pytrec_eval(self):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    import random

    rng = random.Random(0)
    qrels = {f"q{i}": {f"d{j}": rng.choice((0, 1, 2)) for j in rng.sample(range(30), 5)} for i in range(20)}
    run = {q: {f"d{j}": round(rng.random(), 1) for j in range(30)} for q in qrels}
    ours = {q: retrieval.ndcg_at_k(qrels[q], run[q], 10) for q in qrels}
    theirs = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    for q in qrels:
      assert ours[q] == pytest.approx(theirs[q]["ndcg_cut_10"], abs=1e-12)


class TestLongICLBench:
  def test_fewnerd_parse_and_micro_f1(self):
    sent = "Bob went to Paris."
    resp = f"Sentence: {sent}\nBob: person-other\nParis: location-GPE\nSentence: next\nX: y"
    parsed = longiclbench.parse_fewnerd(resp, sent)
    assert parsed == {"Bob": "person-other", "Paris": "location-GPE"}
    out = longiclbench.fewnerd_micro_f1([parsed], [{"Bob": "person-actor", "Paris": "location-GPE", "Z": "x"}])
    assert out["precision"] == pytest.approx(0.5) and out["recall"] == pytest.approx(1 / 3)
    assert out["f1"] == pytest.approx(0.4)

  def test_dialogue_re(self):
    # label position-aligned containment; precision counts predictions that name a known relation
    f1 = longiclbench.dialogue_re_f1(["per:friends, per:boss, junk"], ["per:friends, per:spouse"])
    p, r = 1 / 2, 1 / 2
    assert f1 == pytest.approx(100 * 2 * p * r / (p + r + 1e-8), rel=1e-6)


class TestM4LEScbenchSynthetic:
  def test_m4le(self):
    assert m4le.m4le_score("Paris.\nmore", ["paris"], "acc", end_tokens=("\n", ".")) == 1.0
    assert m4le.m4le_score(" Paris ", ["paris"], "exact_match") == 1.0
    assert m4le.m4le_score(["a", "b"], ["b", "c"], "cls_f1") == 0.5
    assert m4le.squad2_f1("", "") == 1.0 and m4le.squad2_f1("cat", "") == 0.0
    assert m4le.m4le_score("the cat", ["the cat sat"], "rouge") == pytest.approx(2 / 3)

  def test_scbench(self):
    assert scbench.choice_eng("The answer is: B", ["B"]) == 1.0
    assert scbench.choice_eng("C is right", ["B"]) == 0.0
    assert scbench.passkey("The pass key is 71432.", "71432") == 1.0
    assert scbench.math_find("it is 3.0 or 4", [3]) == 1.0
    assert scbench.vt("X Y", ["x", "y", "z"]) == 0.67

  def test_longgen_and_holobench(self):
    resp = "Answer 1: 3 + 15 = 18. The answer is 18.\nAnswer 2: The answer is 3."
    assert synthetic.longgen_score(resp, [18, 4]) == {"score": 0.5, "correct": [True, False]}
    assert synthetic.holo_score("Answer: 101", 100.5) == 1.0
    assert synthetic.holo_score("Answer: Kalo, Mirsa", ["Kalo", "Venra"]) == 0.5
    assert synthetic.threading_score("a b", ["a", "c"]) == 0.5
