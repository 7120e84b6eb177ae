"""Text primitives shared by the official metrics: SQuAD normalisation, token F1, ROUGE through the same packages
the official code uses (pltrdy `rouge` for LongBench / LooGLE / L-CiteEval / M4LE, Google `rouge-score` for L-Eval's
SCROLLS metric), jieba segmentation for Chinese.
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from typing import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
# LongBench / SCBench's Chinese punctuation table (ASCII punctuation is added to it).
CN_PUNCTUATION = ("！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿"
                  "–—‘’‛“”„‟…‧﹏.")
_ZH_PUNCT = set(string.punctuation + CN_PUNCTUATION)


def remove_punctuation(text: str) -> str:
  """Drops every ASCII punctuation character."""
  return "".join(ch for ch in text if ch not in _PUNCT)


def normalize_answer(s: str, lower: bool = True) -> str:
  """SQuAD normalisation: lower, drop punctuation, drop the articles a/an/the, collapse whitespace.

  Order matters (as in the official code): punctuation goes before articles, so "the-end" -> "theend" keeps "the".
  `lower=False` is L-Eval's exam variant, which does not lowercase (so "The" survives article removal).
  """
  if lower:
    s = s.lower()
  return " ".join(_ARTICLES.sub(" ", remove_punctuation(s)).split())


def normalize_zh_answer(s: str) -> str:
  """LongBench's Chinese normalisation: lower, drop ASCII + CJK punctuation, remove all whitespace."""
  return "".join("".join(ch for ch in s.lower() if ch not in _ZH_PUNCT).split())


def counter_f1(prediction: Sequence, ground_truth: Sequence) -> tuple[float, float, float]:
  """Bag-of-tokens (F1, precision, recall) with multiplicity (collections.Counter intersection); 0s on no overlap."""
  common = Counter(prediction) & Counter(ground_truth)
  same = sum(common.values())
  if same == 0:
    return 0.0, 0.0, 0.0
  precision = same / len(prediction)
  recall = same / len(ground_truth)
  return 2 * precision * recall / (precision + recall), precision, recall


def qa_f1(prediction: str, ground_truth: str) -> float:
  """Token F1 after SQuAD normalisation (LongBench `qa_f1_score`, SCROLLS `f1_score`)."""
  return counter_f1(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())[0]


@functools.lru_cache(maxsize=1)
def _jieba():
  import logging

  import jieba

  jieba.setLogLevel(logging.WARNING)
  return jieba


def jieba_cut(text: str) -> list[str]:
  """jieba's default (precise, HMM on) segmentation, as `jieba.cut(text, cut_all=False)`."""
  return list(_jieba().cut(text, cut_all=False))


@functools.lru_cache(maxsize=1)
def _pltrdy_rouge():
  from rouge import Rouge

  return Rouge()


def pltrdy_rouge(hypothesis: str, reference: str) -> dict:
  """`rouge.Rouge().get_scores([hyp], [ref], avg=True)` of the pltrdy `rouge` package (raises ValueError on an
  empty hypothesis or reference, as the package does). Returns {"rouge-1"|"rouge-2"|"rouge-l": {"r","p","f"}}."""
  return _pltrdy_rouge().get_scores([hypothesis], [reference], avg=True)


@functools.lru_cache(maxsize=4)
def _rouge_scorer(types: tuple[str, ...], stemmer: bool):
  from rouge_score import rouge_scorer

  return rouge_scorer.RougeScorer(list(types), use_stemmer=stemmer)


def google_rouge(target: str, prediction: str, types: Sequence[str] = ("rouge1", "rouge2", "rougeL"),
                 use_stemmer: bool = False) -> dict:
  """Google `rouge-score` `RougeScorer(types, use_stemmer).score(target, prediction)` -> {type: Score}."""
  return _rouge_scorer(tuple(types), use_stemmer).score(target, prediction)
