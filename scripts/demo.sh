#!/usr/bin/env bash
# The demo: build a package from Python, import it into a fresh local repository,
# deploy it, run its dataflow, change an input and run again (only what changed runs).
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=.e3-demo
REPO=$DEMO/repo
rm -rf "$DEMO"
mkdir -p "$DEMO"

echo "== build the package defined in examples/diamond.py"
e3 package build examples/diamond.py -o "$DEMO/diamond.zip"

echo "== create a repository and import the package"
e3 repo create "$REPO"
e3 package import "$REPO" "$DEMO/diamond.zip"

echo "== deploy it into workspace 'demo' and look at its datasets"
e3 workspace deploy "$REPO" demo diamond
e3 list "$REPO" demo -r -l

echo "== run the dataflow: left = a+b, right = a*b, merge = left+right"
e3 start "$REPO" demo
echo "merge = $(e3 get "$REPO" demo.tasks.merge)"

echo "== run again: everything comes from the cache"
e3 start "$REPO" demo

echo "== set input a to 20: the workspace shows what is stale, and a run recomputes it"
echo 20 > "$DEMO/a.east"
e3 set "$REPO" demo.inputs.a "$DEMO/a.east"
e3 workspace status "$REPO" demo
e3 start "$REPO" demo
echo "merge = $(e3 get "$REPO" demo.tasks.merge) (expected 25 + 100 = 125)"
test "$(e3 get "$REPO" demo.tasks.merge)" = "125"

echo "== run history"
e3 log "$REPO" demo
