#!/usr/bin/env bash
# The prepared GPU check (bench/gpu_check.py says what it runs and writes). On the GPU machine,
# after `make gpu-wheels` here: one device call per bundle, in the order of .gpu/CALLS.md, each
# carrying its `.gpu/bundle-N`; the calls before the last pass --stage-only.
#
#   bash bench/gpu_check.sh --stage-only    # keep this call's bundle in /tmp/gpu-stage, nothing else
#   bash bench/gpu_check.sh                 # install what was staged, then parts a-d (9 minutes)
#   bash bench/gpu_check.sh --tiny          # here on the CPU, with the project's environment: parts a, b
#
# Outputs go to $OUT (the device call's folder) or .gpu/out.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${GPU_STAGE:-/tmp/gpu-stage}
SITE=${GPU_SITE:-/tmp/gpu-site}
stage_only=0
tiny=0
args=()
for arg in "$@"; do
  case $arg in
    --stage-only) stage_only=1 ;;
    --tiny) tiny=1; args+=("$arg") ;;
    *) args+=("$arg") ;;
  esac
done

shopt -s nullglob
# --tiny runs in the project's own environment: the bundles are for the GPU machine's Python.
[ "$tiny" = 1 ] || for bundle in .gpu/bundle-*/; do
  mkdir -p "$STAGE"
  cp -r "$bundle". "$STAGE"/
  echo "staged $bundle in $STAGE"
done
if [ "$stage_only" = 1 ]; then
  du -sh "$STAGE" 2>/dev/null || true
  exit 0
fi

PY=$(command -v python3)
if [ "$tiny" = 0 ] && [ -f "$STAGE/manifest.json" ]; then
  "$PY" bench/gpu_install.py "$STAGE" "$SITE"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="$SITE/bin:$PATH"
fi
# dvc.yaml's commands call `python`: let it be the interpreter that holds torch.
shim=$(mktemp -d)
# (a wrapper, not a link: a linked venv interpreter would not find its venv)
printf '#!/bin/sh\nexec "%s" "$@"\n' "$PY" > "$shim/python"
chmod +x "$shim/python"
export PATH="$shim:$PATH"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" bench/gpu_check.py "${args[@]}"
