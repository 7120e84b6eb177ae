"""No absolute path to a folder outside the repository in code, configs, experiments, tests, benchmarks, notebooks or
scripts: data ships in lcjax/assets (or comes from $LCJAX_DATA_DIR), outputs go to a workdir the user names.

Python files are read token by token (strings, f-string parts and comments, not code); other text files line by line.
Allowed: scratch and OS locations (/tmp for example workdirs, /dev, /proc, /sys, /usr) and one-component strings
(rich markup "[/bold]", metric keys, "/w" as a fake root in tests).
"""

import io
import os
import re
import tokenize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOTS = ["lcjax", "pallas_kernels", "configs", "experiments", "tests", "benchmarks", "scripts", "colab", "peers"]
TOP_FILES = ["Makefile", "pyproject.toml"]
TEXT_EXT = (".toml", ".yaml", ".yml", ".cfg", ".sh", ".ini", ".json")
BUNDLED_DATA = os.path.join(REPO, "lcjax", "assets", "data")  # third-party data files, not code
ALLOWED = {"tmp", "dev", "proc", "sys", "usr"}
# an absolute path of >= 2 components, at the start of a string or after a separator (not inside a URL or a/b/c)
PATH = re.compile(r"(?:^|[\s\"'`=(,\[{<])(/[A-Za-z_~][\w.+~-]*(?:/[\w.+*~-]+)+)")


def _outside(text: str) -> list[str]:
  return [m.group(1) for m in PATH.finditer(text) if m.group(1).split("/")[1] not in ALLOWED]


def _python_hits(path: str) -> list[tuple[int, str]]:
  hits = []
  with open(path, "rb") as f:
    tokens = list(tokenize.tokenize(f.readline))
  for prev, tok in zip([None, *tokens], tokens):
    if tok.type == tokenize.FSTRING_MIDDLE and prev.type != tokenize.FSTRING_START:
      continue  # continues after a {field}: "{workdir}/model/params" is relative to the field
    if tok.type in (tokenize.STRING, tokenize.COMMENT, tokenize.FSTRING_MIDDLE):
      hits += [(tok.start[0], p) for p in _outside(tok.string)]
  return hits


def _text_hits(path: str) -> list[tuple[int, str]]:
  with open(path, encoding="utf-8", errors="replace") as f:
    return [(i, p) for i, line in enumerate(f, 1) for p in _outside(line)]


def _files():
  for name in TOP_FILES:
    yield os.path.join(REPO, name)
  for root in ROOTS:
    for folder, dirs, files in os.walk(os.path.join(REPO, root)):
      dirs[:] = [d for d in dirs if d != "__pycache__" and os.path.join(folder, d) != BUNDLED_DATA]
      for name in files:
        if name.endswith(".py") or name.endswith(TEXT_EXT) or name == "Makefile":
          yield os.path.join(folder, name)


def test_scanner_finds_outside_paths_and_allows_scratch():
  s = "/"  # the examples are assembled so that this file passes its own scan
  assert _outside(f'SHARED = "{s}work/shared/data"') == [f"{s}work/shared/data"]
  assert _outside(f"path = '{s}home/me/data.jsonl'  # or {s}Users/me/x") == [f"{s}home/me/data.jsonl", f"{s}Users/me/x"]
  assert _outside('"--workdir=/tmp/run" "[/bold]" "https://github.com/a/b" "a/b/c" "/proc/cpuinfo"') == []


def test_no_absolute_paths_outside_the_repository():
  found = [f"{os.path.relpath(p, REPO)}:{line}: {hit}" for p in _files() if os.path.isfile(p)
           for line, hit in (_python_hits(p) if p.endswith(".py") else _text_hits(p))]
  assert not found, "absolute paths outside the repository:\n" + "\n".join(found)
