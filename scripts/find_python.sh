#!/usr/bin/env bash
# Prints the path of a Python interpreter of the given minor version (e.g. 3.12), trying PATH and pyenv.
want="${1:-3.12}"
for c in "python$want" "$HOME"/.pyenv/versions/"$want"*/bin/python"$want" /usr/bin/python"$want" /usr/local/bin/python"$want"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  if "$p" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" 2>/dev/null; then
    echo "$p"; exit 0
  fi
done
echo "no python$want found (install it, e.g. with pyenv)" >&2
exit 1
