"""RAG in the harness: rag.qa metric values, resumable per-question records, summary and plot (scripted LM)."""

import json

import pytest

from lcjax.errors import ConfigError, UnknownNameError
from lcjax.eval import TASKS
from lcjax.eval.metrics import METRICS
from lcjax.eval.rag import RagEvalConfig, plot_performance_vs_length, records_path, run_rag


def test_rag_qa_metric_values():
  m = METRICS.get("rag.qa")
  assert m.score("Quillmoor", ["Quillmoor"]) == {"score": 1.0, "em": 1.0, "f1": 1.0, "acc": 1.0}
  r = m.score("It is in the city of Quillmoor.", ["quillmoor", "Zed"])
  # "it is in city of quillmoor": 6 words after dropping "the" -> P = 1/6, R = 1
  assert r["em"] == 0.0 and r["acc"] == 1.0 and r["f1"] == pytest.approx(2 * (1 / 6) / (1 + 1 / 6))
  assert m.score("Quillmoorish", ["Quillmoor"])["acc"] == 0.0  # whole words only
  agg = m.aggregate([{"acc": 1, "em": 0, "f1": 0.5}, {"acc": 0, "em": 0, "f1": 0.0}])
  assert agg == {"score": 50.0, "n": 2, "em": 0.0, "f1": 25.0}
  assert {"rag.facts", "rag.loogle"} <= set(TASKS.names())


class Oracle:
  """Answers with the gold answer of the question in the prompt's last "Question:" line (a scripted LM)."""

  def __init__(self, corpus):
    self.gold = {q.question: q.answers[0] for q in corpus.questions}
    self.calls = 0

  def encode(self, text):
    return text.split()

  def complete(self, prompt, max_new_tokens, stop):
    self.calls += 1
    question = prompt.rsplit("Question: ", 1)[1].split("\n")[0]
    return f" {self.gold[question]}\n"


def test_run_rag_records_resume_and_plot(tmp_path):
  from lcjax.rag import CORPORA

  oracle = Oracle(CORPORA.get("facts")(seed=0))
  cfg = RagEvalConfig(tasks=["rag.facts"], strategies=["drag:k=1,m=1", "closed"], out_dir=str(tmp_path),
                      num_questions=5)
  rows = run_rag(cfg, lm=oracle)
  assert oracle.calls == 10 and [r["acc"] for r in rows] == [100.0, 100.0]
  path = records_path(str(tmp_path), "rag.facts", cfg.model, "drag:k=1,m=1")
  records = [json.loads(line) for line in open(path)]
  assert len(records) == 5 and all(r["calls"] == 1 and r["effective_length"] == r["prompt_lengths"][0]
                                   for r in records)
  assert rows[0]["effective_length"] > rows[1]["effective_length"]  # documents + a demonstration cost tokens
  again = run_rag(cfg, lm=oracle)
  assert oracle.calls == 10 and again == rows  # resumed: nothing re-run
  assert plot_performance_vs_length(rows, "rag.facts", str(tmp_path / "fig.png")).endswith("fig.png")
  with pytest.raises(UnknownNameError, match="unknown RAG corpus 'wiki'"):
    run_rag(RagEvalConfig(tasks=["rag.wiki"]), lm=oracle)
  with pytest.raises(ConfigError, match="retrieval-only"):
    run_rag(RagEvalConfig(tasks=["rag.essays"], out_dir=str(tmp_path)), lm=oracle)


def test_eval_cli_routes_rag_tasks(tmp_path, monkeypatch, capsys):
  import lcjax.eval.rag as rag_eval
  from lcjax.cli import main
  from lcjax.rag import CORPORA

  real = rag_eval.run_rag
  oracle = Oracle(CORPORA.get("facts")(seed=0))
  monkeypatch.setattr(rag_eval, "run_rag", lambda cfg: real(cfg, lm=oracle))
  assert main(["eval", "--task", "rag.facts", "--rag", "drag:k=1,m=0", "--rag", "iterdrag:k=1,m=0,n=1",
               "--samples", "3", "--out", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert "drag:k=1,m=0" in out and "iterdrag:k=1,m=0,n=1" in out and "100.00" in out
  assert (tmp_path / "rag.facts" / "performance_vs_length.png").exists()
  assert main(["eval", "--task", "rag.facts", "--rag", "drag:q=1", "--out", str(tmp_path)]) == 2
