"""`lcjax attribute`: which texts of a context caused an answer (TracLLM; LOO or attention weights as baselines).

  lcjax attribute --context doc.txt --question "What is the vault code?" [--answer 4817] --html out.html
"""

from __future__ import annotations

import argparse

from lcjax.commands import COMMANDS


def _add(p: argparse.ArgumentParser) -> None:
  p.add_argument("--context", required=True, help="text file with the context")
  p.add_argument("--question", required=True)
  p.add_argument("--answer", default=None, help="the answer to attribute (default: the model's greedy answer)")
  p.add_argument("--model", default="smollm2", help="bundled name (smollm2), .gguf file or HF directory")
  p.add_argument("--level", default="segment", help="segment (100 words), paragraph or sentence")
  p.add_argument("--method", default="tracllm", help="tracllm (search + ensemble), loo, or attention")
  p.add_argument("-k", "--top-k", type=int, default=5, help="K: texts kept by the search and reported")
  p.add_argument("--score-funcs", default="stc,loo,denoised_shapley", help="ensemble score functions")
  p.add_argument("--sh-n", type=int, default=5, help="Monte-Carlo Shapley permutations")
  p.add_argument("--beta", type=float, default=0.2, help="denoised Shapley: fraction of top marginals averaged")
  p.add_argument("--w", type=float, default=2.0, help="LOO's weight in the ensemble")
  p.add_argument("--html", default="attribution.html", help="where to write the highlighted view ('' = none)")
  p.add_argument("--max-new-tokens", type=int, default=32, help="answer length when --answer is not given")


def _answer(pretrained, question: str, texts, max_new_tokens: int) -> str:
  from lcjax.attribution import wrap_prompt
  from lcjax.inference import Generator

  ids = pretrained.tokenizer.encode(wrap_prompt(question, texts))
  out = Generator(pretrained.cfg, pretrained.graphdef).generate(pretrained.state, [ids],
                                                                 max_new_tokens=max_new_tokens).tokens[0]
  return pretrained.tokenizer.decode(out).strip().split("\n")[0]


def run_attribute(args, pretrained=None) -> list[tuple[int, float]]:
  """Attributes and prints; returns the top-K [(text id, score)] (pretrained: injected by tests)."""
  from lcjax.attribution import ScoreOptions, ValueFunction, attention_attribution, attribute, split_context
  from lcjax.attribution.html import render_html
  from lcjax.errors import ConfigError

  if args.method not in ("tracllm", "loo", "attention"):
    raise ConfigError(f"unknown attribution method {args.method!r}; accepted: tracllm, loo, attention")
  if pretrained is None:
    from lcjax.checkpoint import load_pretrained
    from lcjax.commands.eval import MODEL_ALIASES

    pretrained = load_pretrained(MODEL_ALIASES.get(args.model, args.model))
  with open(args.context, encoding="utf-8") as f:
    texts = split_context(f.read(), args.level)
  answer = args.answer if args.answer is not None else _answer(pretrained, args.question, texts, args.max_new_tokens)
  if args.method == "attention":
    mass = attention_attribution(pretrained, args.question, texts, answer)
    top = sorted(enumerate(mass.tolist()), key=lambda kv: (-kv[1], kv[0]))[:args.top_k]
  else:
    funcs = tuple(f for f in args.score_funcs.split(",") if f) if args.method == "tracllm" else ("loo",)
    value = ValueFunction(pretrained, args.question, answer)
    result = attribute(value, texts, args.top_k, funcs, args.w, ScoreOptions(args.sh_n, args.beta),
                       search=args.method == "tracllm")
    top = result.top(args.top_k)
    print(f"{result.calls} value calls, {result.forwards} forwards, {result.seconds:.1f} s")
  print(f"answer: {answer!r}")
  for rank, (i, s) in enumerate(top, 1):
    print(f"{rank}. text {i} (score {s:.4g}): {texts[i].strip()[:160]}")
  if args.html:
    with open(args.html, "w", encoding="utf-8") as f:
      f.write(render_html(texts, top, args.question, answer))
    print(f"html: {args.html}")
  return top


def _run(args) -> int:
  run_attribute(args)
  return 0


COMMANDS.register("attribute", (_add, _run),
                  doc="attribute an answer to the context texts that caused it (TracLLM)")
