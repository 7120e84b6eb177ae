"""Chat templates from model files, rendered in a Jinja sandbox with limits on size and time.

A template comes from an untrusted file, so `render_chat_template` bounds it: the source is at most
`max_source` characters; every value it builds (`*`, `+`, `%`, `**`, `~`, filters, method calls) and the output
are at most `max_output` characters; rendering stops after `max_seconds` (checked on every template line by a trace
hook, so no loop, however nested, runs longer). Breaking a limit, a syntax error or an error the template raises
itself becomes a `CheckpointError` naming the template.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Sequence

from lcjax.errors import CheckpointError


@dataclasses.dataclass(frozen=True)
class TemplateLimits:
  """Bounds on one rendering. max_output is raised to 4x the messages' total size for long prompts."""

  max_source: int = 1 << 16
  max_output: int = 1 << 20
  max_seconds: float = 2.0


class _Limit(Exception):
  """A template exceeded a limit (turned into CheckpointError at the boundary)."""


def _size(value) -> int:
  return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else 0


def _sandbox(max_output: int):
  import jinja2.sandbox

  class Bounded(jinja2.sandbox.ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["+", "-", "*", "/", "//", "%", "**"])

    def call_binop(self, context, operator, left, right):
      if operator == "*":
        for seq, n in ((left, right), (right, left)):
          if _size(seq) and isinstance(n, int) and _size(seq) * max(n, 0) > max_output:
            raise _Limit(f"'*' would build {_size(seq) * n} items (limit {max_output})")
      if operator == "**" and isinstance(right, (int, float)) and isinstance(left, (int, float)):
        if abs(right) > 64 or (left and abs(right) * math.log2(abs(left) + 1) > 256):
          raise _Limit(f"'{left} ** {right}' is too large")
      return _bounded(super().call_binop(context, operator, left, right), max_output)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's signature
      owner = getattr(__obj, "__self__", None)
      _precheck(([owner] if isinstance(owner, (str, list)) else []) + list(args), kwargs, max_output)
      return _bounded(super().call(__context, __obj, *args, **kwargs), max_output)

  env = Bounded(trim_blocks=True, lstrip_blocks=True)
  env.filters = {name: _bounded_filter(f, max_output) for name, f in env.filters.items()}
  return env


def _bounded(value, max_output: int):
  if _size(value) > max_output:
    raise _Limit(f"a value of {_size(value)} items (limit {max_output})")
  return value


def _precheck(args: list, kwargs: dict, max_output: int) -> None:
  """Refuses a call whose result could exceed `max_output` before it runs: a huge integer argument (widths,
  repeat counts) or a value that one of its string arguments could be inserted into at every position
  (replace, join, indent, wordwrap: size <= len(value) * (1 + longest other string))."""
  values = [a for a in list(args) + list(kwargs.values()) if not hasattr(a, "environment")]  # skip the context
  for a in values:
    if isinstance(a, int) and not isinstance(a, bool) and abs(a) > max_output:
      raise _Limit(f"argument {a} is too large")
  sized = [a for a in values if isinstance(a, (str, list, tuple))]
  for i, a in enumerate(sized):
    longest = max((len(b) for j, b in enumerate(sized) if j != i and isinstance(b, str)), default=0)
    items = sum(_size(x) for x in a) if isinstance(a, (list, tuple)) else 0
    if len(a) * (1 + longest) + longest + items > max_output:
      raise _Limit(f"a call on a value of {len(a)} items with a {longest}-character argument")


def _bounded_filter(fn, max_output: int):
  import functools

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    _precheck(list(args), kwargs, max_output)
    return _bounded(fn(*args, **kwargs), max_output)

  return wrapper


def _deadline_tracer(deadline: float, max_output: int):
  """A trace function that stops template code (compiled from '<template>') past `deadline` or when one of its
  variables grows past `max_output`."""

  def local(frame, event, arg):
    if event == "line":
      if time.monotonic() > deadline:
        raise _Limit("rendering took too long")
      for v in frame.f_locals.values():
        if _size(v) > max_output:
          raise _Limit(f"a variable of {_size(v)} items (limit {max_output})")
    return local

  def tracer(frame, event, arg):
    return local if frame.f_code.co_filename == "<template>" else None

  return tracer


def render_chat_template(template: str, messages: Sequence[dict], add_generation_prompt: bool = True,
                         limits: TemplateLimits = TemplateLimits(), name: str = "chat template", **extra) -> str:
  """Renders `messages` with `template` within `limits`.

  Raises:
    CheckpointError: naming the template, for a template over a limit, with a syntax error, or that fails.
  """
  import jinja2

  if not isinstance(template, str):
    raise CheckpointError(f"{name}: must be a string, got {type(template).__name__}")
  if len(template) > limits.max_source:
    raise CheckpointError(f"{name}: {len(template)} characters, above the limit of {limits.max_source}")
  size = sum(len(str(m.get("content", ""))) for m in messages)
  max_output = max(limits.max_output, 4 * size)
  env = _sandbox(max_output)

  def raise_exception(message):
    raise jinja2.TemplateError(str(message)[:200])

  env.globals["raise_exception"] = raise_exception
  old = sys.gettrace()
  try:
    tmpl = env.from_string(template)
    for fn in ("str_join", "markup_join"):  # `~` joins through these module-level helpers
      tmpl.root_render_func.__globals__[fn] = _bounded_join(tmpl.root_render_func.__globals__[fn], max_output)
    parts, total = [], 0
    sys.settrace(_deadline_tracer(time.monotonic() + limits.max_seconds, max_output))
    for chunk in tmpl.generate(messages=list(messages), add_generation_prompt=add_generation_prompt, **extra):
      total += len(chunk)
      if total > max_output:
        raise _Limit(f"output above {max_output} characters")
      parts.append(chunk)
    out = "".join(parts)
    out.encode("utf-8")  # a lone surrogate (from a JSON "\\udcff" escape) is not text any tokenizer can take
    return out
  except _Limit as e:
    raise CheckpointError(f"{name}: exceeds a rendering limit ({e}); refusing to render it") from None
  except (jinja2.TemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError,
          OverflowError, RecursionError, UnicodeError) as e:
    raise CheckpointError(f"{name}: cannot be rendered ({type(e).__name__}: {str(e)[:200]})") from None
  finally:
    sys.settrace(old)


def _bounded_join(join, max_output: int):
  def bounded(seq):
    return _bounded(join(seq), max_output)

  return bounded
