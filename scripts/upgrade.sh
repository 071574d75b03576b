#!/usr/bin/env bash
# `make upgrade`: what the newest releases would do to this project, seen before anyone commits
# them. In a scratch clone of HEAD (.scratch/upgrade; this work tree is not touched): re-lock to the
# newest releases, install that lock into the clone's own environment, list the changed packages
# and the stages their versions re-run, run the suite, a cold `dvc repro` (the clone has no DVC
# cache), and `dvc metrics diff` against the committed run. To adopt the upgrade, copy the clone's
# requirements/ (and versions.yaml, dvc.lock, metrics/ ... after its repro) into a commit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$root/.scratch/upgrade
rm -rf "$scratch"
git clone -q "$root" "$scratch"
cd "$scratch"
echo "== re-locking to the newest releases (scripts/lock.py --upgrade) in $scratch"
"$root/.venv/bin/python" scripts/lock.py --upgrade
changes=$(git diff -U0 requirements/ | grep -E '^[-+][A-Za-z0-9]' | grep -v '^[-+]#' | sed -E 's/ .*//' || true)
if [ -z "$changes" ]; then
  echo "every locked package is already at its newest release: nothing to upgrade"
  exit 0
fi
python3 - "$changes" <<'PY'
import sys
old, new = {}, {}
for line in sys.argv[1].split():
    name, _, version = line[1:].partition("==")
    (old if line[0] == "-" else new)[name.lower()] = version
print("== packages whose locked release changes")
for name in sorted(set(old) | set(new)):
    if old.get(name) != new.get(name):
        print(f"  {name:32s} {old.get(name, '-'):>16s} -> {new.get(name, '-')}")
PY
echo "== installing the new lock into $scratch/.venv"
make --no-print-directory install > install.log 2>&1 || { tail -20 install.log; echo "error: the new lock does not install (install.log)"; exit 1; }
echo "== versions.yaml: the versions the stages depend on"
if git diff --quiet versions.yaml; then
  echo "  none changed: no stage depends on the upgraded packages"
else
  git --no-pager diff -U0 versions.yaml | grep -E '^[-+][a-z]'
fi
echo "== stages whose recorded versions change (they re-run)"
.venv/bin/dvc status --json 2>/dev/null | .venv/bin/python -c '
import json, sys
status = json.load(sys.stdin)
hit = [name for name, changes in status.items() if any("versions.yaml" in json.dumps(c.get("changed deps", {})) for c in changes if isinstance(c, dict))]
print("  " + (", ".join(hit) or "none"))'
failed=0
echo "== the suite (pytest ${UPGRADE_PYTEST:-})"
eval ".venv/bin/pytest -q ${UPGRADE_PYTEST:-}" || failed=1
# auto: the cold repro only when a version a stage depends on changed; otherwise DVC would re-run
# nothing and the committed numbers stand. 1 forces it, 0 skips it.
repro=${UPGRADE_REPRO:-auto}
if [ "$repro" = auto ]; then git diff --quiet versions.yaml && repro=0 || repro=1; fi
if [ "$repro" = 0 ]; then
  echo "== no dvc repro (UPGRADE_REPRO=${UPGRADE_REPRO:-auto})"
else
  echo "== a cold dvc repro with the new releases (the clone has no DVC cache: every stage runs)"
  PATH="$scratch/.venv/bin:$PATH" .venv/bin/dvc repro || failed=1
  echo "== dvc metrics diff (committed run -> the new releases)"
  .venv/bin/dvc metrics diff HEAD --precision 4 || true
fi
[ "$failed" = 0 ] && echo "upgrade checked: suite and repro pass with the new lock ($scratch)" \
  || { echo "upgrade check FAILED (above); the scratch clone stays in $scratch for a look"; exit 1; }
