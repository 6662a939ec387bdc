#!/usr/bin/env bash
# The demo: build a package from Python, import it into a fresh local
# repository, deploy it, change an input and read the results back.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=.e3-demo
REPO=$DEMO/repo
rm -rf "$DEMO"
mkdir -p "$DEMO"

echo "== build the package defined in examples/hello.py"
e3 package build examples/hello.py -o "$DEMO/hello.zip"

echo "== create a repository and import the package"
e3 repo create "$REPO"
e3 package import "$REPO" "$DEMO/hello.zip"

echo "== deploy it into workspace 'demo'"
e3 workspace deploy "$REPO" demo hello
e3 list "$REPO" demo -r -l

echo "== set input x to 21 and read it back"
echo 21 > "$DEMO/x.east"
e3 set "$REPO" demo.inputs.x "$DEMO/x.east"
e3 get "$REPO" demo.inputs.x
e3 get "$REPO" demo.inputs.x -f json

echo "== repository status"
e3 repo status "$REPO"
