"""Context attribution (TracLLM, Wang et al., USENIX Security'25): which texts of a long context caused an answer.

  v = ValueFunction(pretrained, question, answer)              # batched teacher-forced log p(answer | Q, S)
  result = attribute(v, split_context(context, "segment"), k=5)  # search + STC/LOO/denoised-Shapley ensemble
  attention_attribution(pretrained, question, texts, answer)   # the attention-weight baseline
"""

from lcjax.attribution.attention import attention_attribution
from lcjax.attribution.scores import SCORE_FUNCS, ScoreOptions, mean_of_percent, score
from lcjax.attribution.search import Attribution, attribute, precision_recall, tracllm_search
from lcjax.attribution.segment import split_context
from lcjax.attribution.value import ValueFunction, wrap_prompt

__all__ = ["Attribution", "SCORE_FUNCS", "ScoreOptions", "ValueFunction", "attention_attribution", "attribute",
           "mean_of_percent", "precision_recall", "score", "split_context", "tracllm_search", "wrap_prompt"]
