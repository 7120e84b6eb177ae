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
