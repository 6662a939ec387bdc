#!/usr/bin/env bash
# Regenerate constraints.txt: the exact versions CI and `make demo` install.
# pyproject.toml gives the tested ranges; this resolves them once, in a fresh
# virtual environment, and records the result.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check -e ".[dev,server,dask,arrow]"
{
  echo "# Exact versions for CI and the demo (regenerate: scripts/lock.sh)."
  "$tmp/venv/bin/pip" freeze --exclude-editable --disable-pip-version-check | sort -f
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
