"""Writing benchmark tables into benchmarks/RESULTS.md, one replaceable section per benchmark."""

from __future__ import annotations

import os
import platform
import re

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def machine_line() -> str:
  """A short description of this machine: CPU model, cores, Python and JAX versions."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = names[0] if names else cpu
  except OSError:
    pass
  import jax

  return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, jax {jax.__version__}"


def write_section(key: str, title: str, body: str) -> None:
  """Replaces (or appends) the section `key` of RESULTS.md with `title` and `body`."""
  text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n"
  start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
  section = f"{start}\n## {title}\n\n{body}\n{end}"
  pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
  text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
  with open(RESULTS, "w") as f:
    f.write(text)


def compiled_peak_bytes(compiled) -> int:
  """Peak memory XLA reports for a compiled call: arguments + outputs + temporaries, less aliased buffers."""
  mem = compiled.memory_analysis()
  return mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes - mem.alias_size_in_bytes


def best_seconds(compiled, args, repeats: int) -> float:
  """Runs `compiled(*args)` once to warm up, then returns the best wall time of `repeats` runs."""
  import time

  import jax

  jax.block_until_ready(compiled(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    best = min(best, time.perf_counter() - start)
  return best
