"""The error boundary of every entry point (the `lcjax` commands, the launcher): one clean line, never a traceback.

`run_guarded` turns an `lcjax.errors` exception into `<prog>: error: <message>` and exit status 2; any other
exception becomes one line naming its type with a hint to rerun with `--debug` (or `LCJAX_DEBUG=1`), which shows
the traceback instead; Ctrl-C exits 130.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

EXIT_ERROR = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


def debug_enabled(flag: bool = False) -> bool:
  """True when tracebacks were asked for (`--debug` or LCJAX_DEBUG=1)."""
  return bool(flag) or os.environ.get("LCJAX_DEBUG", "") not in ("", "0")


def run_guarded(prog: str, fn: Callable[[], int | None], debug: bool = False) -> int:
  """Runs `fn` and returns its exit status, printing one line on stderr for any exception (see module doc)."""
  from lcjax.errors import LcjaxError

  try:
    return int(fn() or 0)
  except LcjaxError as e:
    if debug_enabled(debug):
      raise
    print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
    return EXIT_ERROR
  except KeyboardInterrupt:
    print(f"{prog}: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED
  except Exception as e:  # noqa: BLE001 - the boundary: everything else is one line plus the --debug hint
    if debug_enabled(debug):
      raise
    print(f"{prog}: error: unexpected {type(e).__name__}: {_one_line(e)} (rerun with --debug for the traceback)",
          file=sys.stderr)
    return EXIT_INTERNAL


def _one_line(e: BaseException, limit: int = 2000) -> str:
  text = " ".join(str(e).split()) or type(e).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."
