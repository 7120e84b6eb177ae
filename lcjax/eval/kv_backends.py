"""Every KV method of `lcjax.kvcache.KV_METHODS` as an evaluation backend (`lcjax eval --kv NAME`), and the
retrieval evaluation: accuracy of each method vs dense on passkey / needle prompts, for any model.

Backend options (EvalConfig.options["kv_options"]): budget (default 0.25 of the prompt), prefill_chunk, and
method_options {method name: {option: value}}.
"""

from __future__ import annotations

from typing import Callable, Sequence

from lcjax.eval.runner import KV_BACKENDS, EvalConfig, run
from lcjax.kvcache import KV_METHODS, make_method

_ROUND = 64


def method_backend(name: str) -> Callable:
  """The backend factory of KV method `name`: (pretrained, **options) -> generate(prompt ids, max_new) -> ids."""

  def factory(pretrained, budget=0.25, prefill_chunk=None, method_options=None, **_):
    from lcjax.inference.kv_method import MethodGenerator

    method = make_method(name, budget=budget, **(method_options or {}).get(name, {}))
    stops = set(pretrained.cfg.eos_token_ids)
    if name == "specontext":
      from lcjax.assets import haystack_text
      from lcjax.kvcache.specontext import SpeContextRunner

      calib = pretrained.tokenizer.encode(haystack_text()[:8000])[:512]
      runner = SpeContextRunner(pretrained.cfg, pretrained.graphdef, pretrained.state, method, calib_prompt=calib)

      def generate(prompt: list[int], max_new_tokens: int) -> list[int]:
        max_len = -(-(len(prompt) + max_new_tokens) // _ROUND) * _ROUND
        out = runner.generate(prompt, max_new_tokens, max_len)[0][0].tolist()
        return out[:next((i for i, t in enumerate(out) if t in stops), len(out))]

      return generate
    gen = MethodGenerator(pretrained.cfg, pretrained.graphdef, method, prefill_chunk=prefill_chunk)

    def generate(prompt: list[int], max_new_tokens: int) -> list[int]:
      return gen.generate(pretrained.state, [prompt], max_new_tokens=max_new_tokens).tokens[0]

    return generate

  return factory


for _name in KV_METHODS.names():
  if _name not in KV_BACKENDS:
    KV_BACKENDS.register(_name, method_backend(_name), doc=f"KV method {_name}: {KV_METHODS.entry(_name).doc}")


def retrieval_table(pretrained, methods: Sequence[str], *, tasks: Sequence[str] = ("ruler.niah_single_1", "niah"),
                    lengths: Sequence[int] = (1024,), budget=0.25, num_samples: int = 4, depths=(25.0, 75.0),
                    out_dir: str = "results/kv_retrieval", max_new_tokens: int = 24) -> list[dict]:
  """Retrieval accuracy of each KV method vs dense on passkey (RULER niah_single_1: noise haystack, number) and
  needle prompts (essay haystack), for any model.

  Returns:
    rows {task, length, kv, score, dense, n}: the method's mean score (0-100) next to dense's in the same cells.
  """
  kv = ["dense"] + [m for m in methods if m != "dense"]
  cfg = EvalConfig(tasks=list(tasks), model=pretrained.source, kv=kv, lengths=list(lengths), depths=list(depths),
                   num_samples=num_samples, out_dir=out_dir, max_new_tokens=max_new_tokens,
                   options={"kv_options": {"budget": budget}})
  summary = run(cfg, pretrained=pretrained, progress=False)["summary"]
  cells: dict = {}
  for r in summary:
    cells.setdefault((r["task"], r["length"], r["kv"]), []).append(r)
  rows = []
  for (task, length, name), group in sorted(cells.items()):
    n = sum(g["n"] for g in group)
    score = sum(g["score"] * g["n"] for g in group) / max(n, 1)
    dense = cells.get((task, length, "dense"), [])
    dn = sum(g["n"] for g in dense)
    rows.append({"task": task, "length": length, "kv": name, "score": score, "n": n,
                 "dense": sum(g["score"] * g["n"] for g in dense) / max(dn, 1)})
  return rows


@KV_BACKENDS.register("speculative", doc="greedy speculative decoding over the dense cache (outputs == dense); "
                                         "options drafter=prompt_lookup|model:PATH|longspec:DIR, draft_tokens")
def speculative_backend(pretrained, drafter: str = "prompt_lookup", draft_tokens: int = 4, prefill_chunk=None, **_):
  """The dense backend's generations through `SpeculativeGenerator` with a drafter (`drafter_from_spec`)."""
  from lcjax.inference import Generator
  from lcjax.inference.drafters import drafter_from_spec
  from lcjax.inference.speculative import SpeculativeGenerator

  draft, params = drafter_from_spec(drafter, int(draft_tokens), pretrained)
  gen = SpeculativeGenerator(Generator(pretrained.cfg, pretrained.graphdef, prefill_chunk=prefill_chunk), draft)

  def generate(prompt: list[int], max_new_tokens: int) -> list[int]:
    return gen.generate(pretrained.state, [prompt], draft_params=params, max_new_tokens=max_new_tokens).tokens[0]

  return generate
