#!/usr/bin/env bash
# Release check: build the wheel and the sdist, install the wheel (not editable)
# into a fresh virtual environment, then run `fastsd reproduce --quick` and the
# test suite against the installed package, from a directory where the source
# tree is not importable. This catches files missing from the package (data,
# ATTRIBUTION.md, subpackages) that an editable install hides.
#
# Usage: bash scripts/check_wheel.sh [WORKDIR]
#   WORKDIR (default: a new temporary directory) receives dist/, venv/, run/.
#   PYTHON=... picks the interpreter that builds and creates the venv (needs
#   `build`: pip install build). Needs network access to PyPI for the build
#   backend and the wheel's dependencies. The sdist is also checked: it must
#   contain every file of fastsd/ (code and data), LICENSE, README.md and
#   pyproject.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
WORK=${1:-$(mktemp -d -t fastsd-wheel-XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
say() { echo "[check_wheel] $*"; }
start=$(date +%s)

say "building wheel and sdist into $WORK/dist"
rm -rf "$WORK/dist"
"$PY" -m build --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log"; say "FAILED: python -m build"; exit 1; }
wheel=$(ls "$WORK"/dist/fastsd-*.whl)
sdist=$(ls "$WORK"/dist/fastsd-*.tar.gz)
say "built $(basename "$wheel") and $(basename "$sdist")"

# What the wheel must carry: every data file of fastsd/data, every subpackage.
"$PY" - "$wheel" "$sdist" "$ROOT" <<'PYEOF'
import sys, tarfile, zipfile
from pathlib import Path
wheel, sdist, root = sys.argv[1], sys.argv[2], Path(sys.argv[3])
names = set(zipfile.ZipFile(wheel).namelist())
need = [str(p.relative_to(root)) for p in (root / "fastsd").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".nbi", ".nbc")]
missing = sorted(set(need) - names)
if missing:
    sys.exit("[check_wheel] FAILED: the wheel lacks " + ", ".join(missing))
members = {m.split("/", 1)[1] for m in tarfile.open(sdist).getnames() if "/" in m}
want = need + ["LICENSE", "README.md", "pyproject.toml"]
missing = sorted(set(want) - members)
if missing:
    sys.exit("[check_wheel] FAILED: the sdist lacks " + ", ".join(missing))
print(f"[check_wheel] wheel holds all {len(need)} files of fastsd/; sdist complete")
PYEOF

say "fresh virtual environment $WORK/venv, installing the wheel with [cli,test]"
rm -rf "$WORK/venv"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --upgrade pip
"$WORK/venv/bin/python" -m pip install --quiet "${wheel}[cli,test]"

# Run from a directory without the source: only the tests, the asv suite and
# the scripts they use are copied (no fastsd/), and PYTHONPATH is cleared.
run="$WORK/run"
rm -rf "$run"
mkdir -p "$run"
cp -r "$ROOT/tests" "$ROOT/benchmarks" "$ROOT/scripts" "$ROOT/asv.conf.json" \
    "$ROOT/pyproject.toml" "$run/"
mkdir -p "$run/docs" && cp -r "$ROOT/docs/user_guide" "$run/docs/"  # a test runs its config
find "$run" -name __pycache__ -prune -exec rm -rf {} +
cd "$run"
export PYTHONPATH=
where=$("$WORK/venv/bin/python" -c "import fastsd; print(fastsd.__file__)")
case "$where" in
    "$WORK/venv/"*) say "fastsd imports from the installed wheel: $where" ;;
    *) say "FAILED: fastsd imports from $where, not from the venv"; exit 1 ;;
esac

say "fastsd reproduce --quick"
t0=$(date +%s)
"$WORK/venv/bin/fastsd" reproduce --quick --no-progress --out "$run/report"
test -s "$run/report/summary.md" || { say "FAILED: no summary.md"; exit 1; }
say "reproduce --quick: $(( $(date +%s) - t0 )) s"

say "test suite against the installed wheel"
t0=$(date +%s)
"$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider tests
say "tests: $(( $(date +%s) - t0 )) s"
say "OK in $(( $(date +%s) - start )) s (work directory $WORK)"
