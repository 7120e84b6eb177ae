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
  p.add_argument("--weights", default="fp32", help="fp32, bf16, gguf (a GGUF file's quantised tensors as stored), "
                 "or a quantised format: int8, q8_0, q4_0, q4_1 (see lcjax.quant)")


def load_from_args(args):
  """Loads the model named by the shared flags."""
  from lcjax.checkpoint import load_pretrained
  from lcjax.errors import ConfigError

  if not args.rope_scaling and args.rope_factor != 1.0:
    raise ConfigError(f"--rope-factor {args.rope_factor} needs --rope-scaling (linear, ntk, yarn, llama3, abf)")
  rope = {"scaling": args.rope_scaling, "factor": args.rope_factor} if args.rope_scaling else None
  return load_pretrained(args.model, rope_overrides=rope, attention_impl=args.attention_impl, dtype=args.dtype,
                         weights=getattr(args, "weights", "fp32"))


def _add(p: argparse.ArgumentParser) -> None:
  p.add_argument("prompt", help="the user message (wrapped in the chat template unless --raw)")
  add_model_arguments(p)
  p.add_argument("--raw", action="store_true", help="do not apply the chat template")
  p.add_argument("--max-new-tokens", type=int, default=128)
  p.add_argument("--temperature", type=float, default=0.0)
  p.add_argument("--top-k", type=int, default=0)
  p.add_argument("--top-p", type=float, default=1.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                 help="end the reply at the first occurrence of TEXT (repeatable; EOS always ends it)")
  p.add_argument("--speculative", default=None, metavar="DRAFTER",
                 help="speculative decoding with a drafter: prompt_lookup, model:PATH or longspec:DIR (lossless)")
  p.add_argument("--draft-tokens", type=int, default=4, help="draft tokens per speculative step (gamma)")


def _run(args) -> int:
  from lcjax.inference import Generator, SamplingConfig
  from lcjax.inference.stopping import answer_text, stop_token_ids

  check_generate_args(args)
  pretrained = load_from_args(args)
  tok = pretrained.tokenizer
  if tok is None:
    from lcjax.errors import CheckpointError

    raise CheckpointError(f"{pretrained.source}: the model has no tokenizer; `lcjax generate` needs one to encode "
                          f"the prompt")
  text = args.prompt if args.raw else tok.apply_chat_template([{"role": "user", "content": args.prompt}])
  gen = Generator(pretrained.cfg, pretrained.graphdef)
  eos = tuple(pretrained.cfg.eos_token_ids)
  extra = {}
  if args.speculative:
    from lcjax.inference.drafters import drafter_from_spec
    from lcjax.inference.speculative import SpeculativeGenerator

    drafter, extra["draft_params"] = drafter_from_spec(args.speculative, args.draft_tokens, pretrained)
    gen = SpeculativeGenerator(gen, drafter)
  result = gen.generate(pretrained.state, [tok.encode(text)], max_new_tokens=args.max_new_tokens,
                        sampling=SamplingConfig(args.temperature, args.top_k, args.top_p),
                        rng=jax.random.PRNGKey(args.seed), stop_ids=(*eos, *stop_token_ids(tok, args.stop)), **extra)
  print(answer_text(tok, result, 0, args.stop, eos) if args.stop else tok.decode(result.tokens[0]))
  return 0


def check_generate_args(args) -> None:
  """Refuses values argparse lets through: non-UTF-8 prompt bytes, NaN/inf sampling values, seeds past int64."""
  import math

  from lcjax.errors import ConfigError

  try:
    args.prompt.encode("utf-8")
  except UnicodeEncodeError as e:
    raise ConfigError(f"the prompt is not valid UTF-8 (byte {e.start}); pass UTF-8 text") from None
  for name in ("temperature", "top_p", "rope_factor"):
    if not math.isfinite(getattr(args, name)):
      raise ConfigError(f"--{name.replace('_', '-')} must be a finite number, got {getattr(args, name)}")
  if not 0 <= args.seed < 2**63:
    raise ConfigError(f"--seed must be in [0, 2**63), got {args.seed}")
  if args.max_new_tokens < 1:
    raise ConfigError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")


COMMANDS.register("generate", (_add, _run), doc="generate text with a pretrained model")
