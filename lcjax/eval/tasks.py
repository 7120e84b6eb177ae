"""Registration of every evaluation task in `TASKS` (generators and official-format loaders)."""

from __future__ import annotations

import functools

from lcjax.eval.data import longgen, needlebench, ruler, threading
from lcjax.eval.loaders import icl, leval, longbench, qa, structured
from lcjax.eval.task import SampleSpec, Task, register_task
from lcjax.eval.taxonomy import tags_for


def _samples(make, **kw):
  """A generator source: spec -> [make(spec, i, **kw) for i in range(num_samples)]."""

  def source(spec: SampleSpec):
    return [make(spec, i, **kw) for i in range(max(spec.num_samples, 1))]

  return source


def _task(name: str, benchmark: str, source, metric: str, max_new_tokens: int, **kw) -> Task:
  diffusion, scope = tags_for(name, benchmark)
  return register_task(Task(name=name, benchmark=benchmark, source=source, metric=metric,
                            max_new_tokens=max_new_tokens, diffusion=diffusion, scope=scope, **kw))


def _register_generators() -> None:
  gen = dict(synthetic=True, truncation="none")
  for variant in ruler.NIAH_VARIANTS:
    _task(f"ruler.{variant}", "ruler", _samples(functools.partial(ruler.niah_example, variant)),
          "ruler.string_match_all", 128, uses_depth=True, doc=f"RULER {variant}", **gen)
  _task("niah", "ruler", _samples(functools.partial(ruler.niah_example, "niah_single_2")), "ruler.string_match_all",
        32, uses_depth=True, doc="needle in a haystack (RULER niah_single_2: essay haystack, word key, number)",
        **gen)
  _task("ruler.vt", "ruler", _samples(ruler.vt_example), "ruler.string_match_all", 50, doc="RULER variable tracking",
        **gen)
  _task("ruler.cwe", "ruler", _samples(ruler.cwe_example), "ruler.string_match_all", 120,
        doc="RULER common words extraction", **gen)
  _task("ruler.fwe", "ruler", _samples(ruler.fwe_example), "ruler.string_match_all", 50,
        doc="RULER frequent words extraction", **gen)
  _task("needlebench.single", "needlebench", _samples(needlebench.single_needle_example), "needlebench.origin", 64,
        uses_depth=True, doc="NeedleBench single-needle retrieval", **gen)
  _task("needlebench.multi_retrieval", "needlebench", _samples(needlebench.multi_needle_retrieval_example),
        "needlebench.parallel", 128, uses_depth=True, doc="NeedleBench multi-needle retrieval", **gen)
  _task("needlebench.multi_reasoning", "needlebench", _samples(needlebench.multi_needle_reasoning_example),
        "needlebench.multi", 64, uses_depth=True, doc="NeedleBench multi-needle reasoning (kinship chain)", **gen)
  _task("needlebench.atc", "needlebench", _samples(needlebench.atc_example), "needlebench.atc", 512,
        doc="NeedleBench Ancestral Trace Challenge (boxed answer)", **gen)
  for mode, num in (("single", 1), ("multi", 4), ("thread", 1), ("multi_thread", 3)):
    _task(f"threading.{mode}", "threading", _samples(threading.threading_example, mode=mode, num=num),
          "threading.accuracy", 64 * num, uses_depth=True, doc=f"Needle Threading: {mode}", **gen)
  _task("longgenbench.gsm8k", "longgenbench", _samples(longgen.longgen_example), "longgenbench.accuracy", 2048,
        data_file="gsm8k", doc="LongGenBench: K GSM8K questions answered in one response", **gen)
  _task("holobench.movies", "holobench", _samples(longgen.holobench_example), "holobench.accuracy", 128,
        doc="HoloBench-style database query over verbalised rows (DuckDB gold)", **gen)
  _task("longins.gist", "longins", _samples(longgen.longins_example), "longins.f1", 128,
        doc="LongIns-style grading exam (GIST prompt)", **gen)


def _register_longbench() -> None:
  for name, maxlen in longbench.DATASET2MAXLEN.items():
    _task(f"longbench.{name}", "longbench", functools.partial(longbench.longbench_examples, dataset=name),
          f"longbench.{name}", maxlen, chat=name not in longbench.NO_CHAT, data_file="longbench",
          doc=f"LongBench {name}")
  for name in longbench.LONGBENCH_E:
    _task(f"longbench_e.{name}", "longbench_e", functools.partial(longbench.longbench_examples, dataset=name, e=True),
          f"longbench_e.{name}", longbench.DATASET2MAXLEN[name], chat=name not in longbench.NO_CHAT,
          data_file="longbench", doc=f"LongBench-E {name}")


LEVAL_METRIC = {"coursera": "leval.exam_options", "quality": "leval.exam_options", "tpo": "leval.exam_options",
                "gsm100": "leval.exam_math", "topic_retrieval_longchat": "leval.topic_retrieval",
                "codeU": "leval.exam_code", "sci_fi": "leval.sci_fi", "gov_report_summ": "leval.rouge",
                "meeting_summ": "leval.rouge", "news_summ": "leval.rouge", "patent_summ": "leval.rouge",
                "review_summ": "leval.rouge", "tv_show_summ": "leval.rouge", "paper_assistant": "leval.rouge"}
M4LE_TASKS = {  # task: (metric, lang, end tokens, label separator, label end)  -- evaluation.py's tasks_param
    "arxiv": ("rouge", "en", ("\n",)), "pubmed": ("rouge", "en", ("\n",)), "booksum": ("rouge", "en", ("\n",)),
    "cnnnews": ("rouge", "en", ("\n",)), "wikihow": ("rouge", "en", ("\n",)),
    "bigpatent_global_sum": ("rouge", "en", ("\n",)), "cnewsum": ("rouge", "zh", ("\n", "新闻")),
    "triviaqa": ("acc", "en", ("\n", ".")), "newsqa": ("acc", "en", ("\n", ".")), "duorc": ("acc", "en", ("\n", ".")),
    "nq-open": ("acc", "en", ("\n", ".")), "hotpotqa": ("acc", "en", ("\n", ".")), "wow": ("acc", "en", (",", "\n")),
    "c3": ("acc", "zh", ("\n", "。")), "dureader": ("acc", "zh", ("\n", "。")),
    "bigpatent_global_cls": ("acc", "en", (":",)), "drcd_explicit-single_ret": ("acc", "en", ("，", "\n")),
    "wikitext-103": ("exact_match", "en", (".",)), "wiki2019zh": ("exact_match", "zh", ("。",)),
    "mnds-news_explicit-single_cls+ret": ("exact_match", "en", ()),
    "marc": ("cls_f1", "en", (), ",", "."), "mnds-news_explicit-multiple_cls+ret": ("cls_f1", "en", (), ",", "."),
    "open-subtitles-en2zh": ("bleu", "zh", ()), "open-subtitles-zh2en": ("bleu", "en", ()),
    "news-commentary-en2zh": ("bleu", "zh", ()), "news-commentary-zh2en": ("bleu", "en", ()),
    "tedtalks-en2zh": ("bleu", "zh", ()), "tedtalks-zh2en": ("bleu", "en", ()),
    "online-shopping": ("cls_f1", "en", (), "，", "。"), "thucnews_explicit-multiple_cls+ret": ("cls_f1", "zh", (), "，",
                                                                                                "。"),
}
SCBENCH_TASKS = tuple(qa.SCBENCH_MAXLEN)
CITEEVAL_QA = ("narrativeqa", "natural_questions", "hotpotqa", "2wikimultihopqa", "dialsim", "locomo")


def _with_kwargs(source, **kwargs):
  """Wraps a loader so every example gets extra metric kwargs."""

  def wrapped(spec):
    out = source(spec)
    for ex in out:
      ex.metric_kwargs.update(kwargs)
    return out

  return wrapped


def _register_loaders() -> None:
  for name in leval.CLOSED + leval.OPEN:
    _task(f"leval.{name}", "leval", functools.partial(leval.leval_examples, task=name),
          LEVAL_METRIC.get(name, "leval.f1"), 512, truncation="leval_words", data_file="leval",
          doc=f"L-Eval {name}")
  for name, maxlen in qa.LOOGLE_MAXLEN.items():
    metric = "loogle.cloze" if name == "shortdep_cloze" else "loogle.rouge"
    _task(f"loogle.{name}", "loogle", functools.partial(qa.loogle_examples, task=name), metric, maxlen,
          data_file="loogle", doc=f"LooGLE {name}")
  for name, params in M4LE_TASKS.items():
    metric, lang, ends, *labels = params
    kwargs = dict(metric=metric, lang=lang, end_tokens=ends, **(dict(sep=labels[0], end=labels[1]) if labels else {}))
    if name == "marc":  # only marc_preprocess cuts the answer at "." too
      kwargs["cut_answer"] = True
    _task(f"m4le.{name}", "m4le", _with_kwargs(functools.partial(qa.m4le_examples, task=name), **kwargs),
          "m4le.score", 512, data_file="m4le", doc=f"M4LE {name} ({metric})")
  for name in SCBENCH_TASKS:
    _task(f"scbench.{name.removeprefix('scbench_')}", "scbench", functools.partial(qa.scbench_examples, task=name),
          "scbench.score", qa.SCBENCH_MAXLEN[name], data_file="scbench", doc=f"SCBench {name} (golden multi-turn)")
  _task("longiclbench.fewnerd", "longiclbench", icl.fewnerd_examples, "longiclbench.fewnerd", 100, chat=False,
        truncation="none", data_file="longiclbench", doc="LongICLBench Few-NERD (micro-F1)")
  _task("longiclbench.dialogue_re", "longiclbench", icl.dialogue_re_examples, "longiclbench.dialogue_re", 100,
        chat=False, truncation="none", data_file="longiclbench", doc="LongICLBench DialogRE (F1)")
  _task("longiclbench.banking77", "longiclbench", icl.label_examples, "longiclbench.label_em", 100, chat=False,
        truncation="none", data_file="longiclbench/banking77", doc="LongICLBench banking77-style label EM")
  _task("citeeval.niah", "citeeval", functools.partial(structured.citeeval_examples, task="niah"), "citeeval.niah",
        128, data_file="citeeval", doc="L-CiteEval NIAH (rule-based citation)")
  _task("citeeval.counting_stars", "citeeval", functools.partial(structured.citeeval_examples, task="counting_stars"),
        "citeeval.counting_stars", 128, data_file="citeeval", doc="L-CiteEval counting stars (rule-based citation)")
  for name in CITEEVAL_QA:
    _task(f"citeeval.{name}", "citeeval", functools.partial(structured.citeeval_examples, task=name), "citeeval.qa",
          200, data_file="citeeval", doc=f"L-CiteEval {name} (correctness F1; citation needs an NLI model)")
  for name in ("qmsum", "gov_report", "multi_news"):
    _task(f"citeeval.{name}", "citeeval", functools.partial(structured.citeeval_examples, task=name),
          "citeeval.summary", 800, data_file="citeeval",
          doc=f"L-CiteEval {name} (correctness ROUGE-L; citation needs an NLI model)")
  metrics = {"path_traversal": "longproc.path_traversal", "tom_tracking": "longproc.tom_tracking",
             "countdown": "longproc.countdown", "html_to_tsv": "longproc.html_to_tsv",
             "pseudo_to_code": "longproc.pseudo_to_code"}
  for name, metric in metrics.items():
    _task(f"longproc.{name}", "longproc", functools.partial(structured.longproc_examples, task=name), metric, 1024,
          truncation="none", data_file="longproc", doc=f"LongProc {name} (0.5k)")
  _task("loco.listwise", "loco", structured.loco_examples, "loco.listwise_ndcg@10", 64, data_file="loco",
        doc="LoCoV1 listwise ranking by the LM (NDCG@10)")


_register_generators()
_register_longbench()
_register_loaders()
