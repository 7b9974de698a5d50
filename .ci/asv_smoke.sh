#!/usr/bin/env bash
# asv smoke test for CI (about a minute on 2 cores):
#   asv machine --yes; asv check --python=same;
#   asv run --quick --python=same --show-stderr on the smallest parameters
#   (benchmarks.common.SMOKE_BENCH), in the current environment.
# Results and HTML go to a temporary directory, not the checkout (asv keeps its
# machine description in ~/.asv-machine.json).
# Exits non-zero when asv is missing, when a benchmark does not import or
# check, or when any benchmark fails.
# Usage: bash .ci/asv_smoke.sh   (PYTHON=... to pick the interpreter)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
PY=${PYTHON:-python}

if ! "$PY" -c "import asv" 2>/dev/null; then
    echo "asv_smoke: FAILED: asv is not installed for $PY (pip install asv mpmath)" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fastsd-asv-smoke.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# a copy of asv.conf.json whose output directories live in $TMP
"$PY" - "$ROOT" "$TMP" <<'PYEOF'
import json, os, sys
root, tmp = sys.argv[1:3]
with open(os.path.join(root, "asv.conf.json")) as f:
    conf = json.load(f)
conf.update(repo=root, benchmark_dir=os.path.join(root, "benchmarks"),
            env_dir=os.path.join(tmp, "env"), results_dir=os.path.join(tmp, "results"),
            html_dir=os.path.join(tmp, "html"))
with open(os.path.join(tmp, "asv.conf.json"), "w") as f:
    json.dump(conf, f, indent=2)
PYEOF

asv() { "$PY" -m asv "$@" --config "$TMP/asv.conf.json"; }
start=$SECONDS
echo "== asv machine --yes"
asv machine --yes >/dev/null  # writes ~/.asv-machine.json

echo "== asv check --python=same"
asv check --python=same

mapfile -t SMOKE < <(PYTHONPATH="$ROOT" "$PY" -c \
    "from benchmarks.common import SMOKE_BENCH; print('\n'.join(SMOKE_BENCH))")
BENCH_ARGS=()
for regex in "${SMOKE[@]}"; do BENCH_ARGS+=(--bench "$regex"); done

echo "== asv run --quick --python=same (smoke subset: ${#SMOKE[@]} patterns)"
set +e
asv run --quick --python=same --show-stderr "${BENCH_ARGS[@]}" \
    2>&1 | tee "$TMP/run.log"
rc=${PIPESTATUS[0]}
set -e

# asv run exits 2 when a benchmark fails (asv >= 0.5); older versions exit 0,
# so also look for failures in the log ("failed" status lines / table cells).
if [ "$rc" -ne 0 ] || grep -Eq '(^\[.*[[:space:]]failed$)|([[:space:]]failed[[:space:]])' "$TMP/run.log"; then
    echo "asv_smoke: FAILED (asv run exit code $rc; see the log above)" >&2
    exit 1
fi
if ! grep -Eq '^\[.*[[:space:]]ok$' "$TMP/run.log"; then
    echo "asv_smoke: FAILED: no benchmark ran" >&2
    exit 1
fi
n_ok=$(grep -Ec '^\[.*[[:space:]]ok$' "$TMP/run.log")
echo "asv_smoke: $n_ok benchmarks ok in $((SECONDS - start)) s"
