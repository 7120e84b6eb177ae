"""A highlighted HTML view of an attribution: every text of the context, its background shaded by its score (top-K
texts only, normalised by the largest), with the question, the answer and the ranked list."""

from __future__ import annotations

import html
from typing import Sequence


def render_html(texts: Sequence[str], top: Sequence[tuple[int, float]], question: str, answer: str,
                title: str = "lcjax attribution") -> str:
  """The page as a string. `top`: [(text id, score)] best first (the texts to highlight)."""
  scores = dict(top)
  peak = max((s for s in scores.values() if s > 0), default=1.0)
  spans = []
  for i, text in enumerate(texts):
    s = scores.get(i)
    alpha = 0.0 if s is None or s <= 0 else min(1.0, s / peak)
    tip = f"text {i}" + ("" if s is None else f": score {s:.4g}")
    spans.append(f'<span title="{html.escape(tip)}" style="background: rgba(255, 80, 0, {alpha:.3f})">'
                 f"{html.escape(text)}</span>")
  rows = "".join(f"<tr><td>{rank}</td><td>{i}</td><td>{s:.4g}</td><td>{html.escape(texts[i][:200])}</td></tr>"
                 for rank, (i, s) in enumerate(top, 1))
  return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
          f"<body style='font-family: sans-serif; max-width: 60em'><h2>{html.escape(title)}</h2>"
          f"<p><b>Question:</b> {html.escape(question)}<br><b>Answer:</b> {html.escape(answer)}</p>"
          f"<table border=1 cellpadding=3><tr><th>rank</th><th>text</th><th>score</th><th>content</th></tr>{rows}"
          f"</table><h3>Context</h3><p style='white-space: pre-wrap'>{''.join(spans)}</p></body></html>")
