"""`lcjax demo` (what `make demo` runs): a long-document question answered by the bundled model.

A fact is hidden in the middle of a few thousand tokens of Paul Graham essays (shipped in the package); the model
reads the whole document and answers. Prints the answer, the attention impl that ran, prefill/decode tokens/s and
the process's peak memory.
"""

from __future__ import annotations

import resource

from lcjax.commands import COMMANDS

NEEDLE = " The secret ingredient in Grandma Rosa's famous lasagna is a spoonful of cinnamon. "
QUESTION = "What is the secret ingredient in Grandma Rosa's famous lasagna?"


def build_document(tokenizer, context_tokens: int, depth: float = 0.5) -> str:
  """Haystack text of about `context_tokens` tokens with NEEDLE inserted at a sentence boundary near `depth`."""
  from lcjax.assets import haystack_text

  ids = tokenizer.encode(haystack_text()[: context_tokens * 8])[:context_tokens]
  body = tokenizer.decode(ids)
  cut = body.rfind(".", 0, int(len(body) * depth)) + 1
  return body[:cut] + NEEDLE + body[cut:]


def _add(p) -> None:
  from lcjax.commands.generate import add_model_arguments

  add_model_arguments(p)
  p.add_argument("--context", type=int, default=3500, help="document length in tokens")
  p.add_argument("--depth", type=float, default=0.5, help="where the fact sits, 0 = start, 1 = end")


def _run(args) -> int:
  import jax
  from rich.console import Console

  from lcjax.commands.generate import load_from_args
  from lcjax.inference import Generator
  from lcjax.inference.stopping import NEWLINE_RULE, answer_text, stop_token_ids
  from lcjax.ops.attention import ATTENTION_IMPLS, AUTO_TABLE, resolve_impl
  from lcjax.ops.decode import AUTO_TABLE as DECODE_AUTO
  from lcjax.ops.decode import DECODE_IMPLS

  console = Console()
  pretrained = load_from_args(args)
  tok = pretrained.tokenizer
  doc = build_document(tok, args.context, args.depth)
  message = f"Read the document and answer the question.\n\nDocument:\n{doc}\n\nQuestion: {QUESTION}"
  prompt = tok.encode(tok.apply_chat_template([{"role": "user", "content": message}]))
  attn = resolve_impl(ATTENTION_IMPLS, AUTO_TABLE, pretrained.cfg.attention_impl, {})
  dec = resolve_impl(DECODE_IMPLS, DECODE_AUTO, pretrained.cfg.decode_impl, {})
  console.print(f"[bold]model[/bold] {pretrained.source}")
  console.print(f"[bold]devices[/bold] {jax.devices()}  [bold]attention[/bold] {attn}  [bold]decode[/bold] {dec}")
  console.print(f"[bold]prompt[/bold] {len(prompt)} tokens; fact hidden at depth {args.depth:.0%}")
  gen = Generator(pretrained.cfg, pretrained.graphdef)
  eos = tuple(pretrained.cfg.eos_token_ids)
  stops = (*eos, *stop_token_ids(tok, NEWLINE_RULE))  # the answer ends at EOS or at its first blank line
  gen.generate(pretrained.state, [prompt], max_new_tokens=48, stop_ids=stops)  # compile (timings below exclude it)
  result = gen.generate(pretrained.state, [prompt], max_new_tokens=48, stop_ids=stops)
  answer = answer_text(tok, result, 0, NEWLINE_RULE, eos)
  console.print(f"[bold]question[/bold] {QUESTION}\n[bold]answer[/bold]   {answer}")
  console.print(f"prefill {result.prefill_tokens_per_second:,.0f} tok/s ({result.prefill_seconds:.2f} s), "
                f"decode {result.decode_tokens_per_second:,.1f} tok/s ({result.decode_steps} tokens), "
                f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GiB")
  found = "cinnamon" in answer.lower()
  console.print("[green]the model found the fact[/green]" if found else "[red]the model missed the fact[/red]")
  return 0


COMMANDS.register("demo", (_add, _run), doc="answer a question about a long document with the bundled model")
