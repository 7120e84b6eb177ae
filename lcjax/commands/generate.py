"""`lcjax generate`: text generation with a pretrained model."""

from __future__ import annotations

import argparse

import jax

from lcjax.commands import COMMANDS


def add_model_arguments(p: argparse.ArgumentParser) -> None:
  """Flags shared by commands that load a model."""
  p.add_argument("--model", default="smollm2-135m", help="bundled name, .gguf file or HF checkpoint directory")
  p.add_argument("--attention-impl", default="auto", help="attention impl (see `lcjax info`)")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="compute dtype")
  p.add_argument("--rope-scaling", default=None, help="RoPE scaling name (none, linear, ntk, yarn, llama3, abf)")
  p.add_argument("--rope-factor", type=float, default=1.0, help="RoPE scaling factor")


def load_from_args(args):
  """Loads the model named by the shared flags."""
  from lcjax.checkpoint import load_pretrained

  rope = {"scaling": args.rope_scaling, "factor": args.rope_factor} if args.rope_scaling else None
  return load_pretrained(args.model, rope_overrides=rope, attention_impl=args.attention_impl, dtype=args.dtype)


def _add(p: argparse.ArgumentParser) -> None:
  p.add_argument("prompt", help="the user message (wrapped in the chat template unless --raw)")
  add_model_arguments(p)
  p.add_argument("--raw", action="store_true", help="do not apply the chat template")
  p.add_argument("--max-new-tokens", type=int, default=128)
  p.add_argument("--temperature", type=float, default=0.0)
  p.add_argument("--top-k", type=int, default=0)
  p.add_argument("--top-p", type=float, default=1.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--speculative", default=None, metavar="DRAFTER",
                 help="speculative decoding with a drafter: prompt_lookup, model:PATH or longspec:DIR (lossless)")
  p.add_argument("--draft-tokens", type=int, default=4, help="draft tokens per speculative step (gamma)")


def _run(args) -> int:
  from lcjax.inference import Generator, SamplingConfig

  pretrained = load_from_args(args)
  tok = pretrained.tokenizer
  text = args.prompt if args.raw else tok.apply_chat_template([{"role": "user", "content": args.prompt}])
  gen = Generator(pretrained.cfg, pretrained.graphdef)
  extra = {}
  if args.speculative:
    from lcjax.inference.drafters import drafter_from_spec
    from lcjax.inference.speculative import SpeculativeGenerator

    drafter, extra["draft_params"] = drafter_from_spec(args.speculative, args.draft_tokens, pretrained)
    gen = SpeculativeGenerator(gen, drafter)
  result = gen.generate(pretrained.state, [tok.encode(text)], max_new_tokens=args.max_new_tokens,
                        sampling=SamplingConfig(args.temperature, args.top_k, args.top_p),
                        rng=jax.random.PRNGKey(args.seed), **extra)
  print(tok.decode(result.tokens[0]))
  return 0


COMMANDS.register("generate", (_add, _run), doc="generate text with a pretrained model")
