"""The asv benchmark suite (benchmarks/) imports, passes ``asv check`` and runs.

Fast (well under a minute): every benchmark method is called once on its
class's smallest parameters, in this process, without asv's timing machinery.
The full dashboard build (scripts/asv_dashboard.py) is exercised by
``test_dashboard_reduced`` only when FASTSD_ASV_DASHBOARD=1 (a few minutes).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("asv")

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "decomposition",
    "sweeps",
    "validation",
    "workflow",
    "accuracy",
    "memory",
    "jit_compile",
    "estimators",
    "runner",
    "kernel_sd",
    "sweep",
    "history",
]
PREFIXES = ("time_", "track_", "peakmem_", "mem_", "timeraw_")


@pytest.fixture(scope="module")
def suite():
    sys.path.insert(0, str(ROOT))
    try:
        yield {name: importlib.import_module(f"benchmarks.{name}") for name in MODULES}
    finally:
        sys.path.remove(str(ROOT))


def benchmark_classes(suite):
    for modname, module in suite.items():
        for name, cls in list(vars(module).items()):
            if (
                inspect.isclass(cls)
                and not name.startswith("_")
                and cls.__module__ == module.__name__
                and any(m.startswith(PREFIXES) for m in dir(cls))
            ):
                yield modname, name, cls


def methods(cls):
    return [m for m in dir(cls) if m.startswith(PREFIXES)]


def test_every_module_has_benchmarks(suite):
    found = {mod for mod, _, _ in benchmark_classes(suite)}
    assert found == set(MODULES)


def test_params_are_plain_literals(suite):
    """Params are constants (never machine-dependent) that asv can name by repr."""
    for _, name, cls in benchmark_classes(suite):
        params = getattr(cls, "params", [])
        names = getattr(cls, "param_names", [])
        assert len(params) == len(names), name
        for values in params:
            assert values, name
            for value in values:
                assert ast.literal_eval(repr(value)) == value, (name, value)


def test_track_benchmarks_declare_units(suite):
    for _, name, cls in benchmark_classes(suite):
        for method in methods(cls):
            if method.startswith("track_"):
                assert getattr(getattr(cls, method), "unit", None), f"{name}.{method}"


def smallest(cls):
    return [values[0] for values in getattr(cls, "params", [])]


# the asv suite times public sweeps on random problems: NaN xi are a side effect; and it
# still passes decompose(backend=...) (deprecated, no effect) to keep its parameter axis
@pytest.mark.filterwarnings("ignore:decompose\\(backend=:FutureWarning")
@pytest.mark.filterwarnings("ignore::fastsd.exceptions.IllConditionedXiWarning")
@pytest.mark.slow
@pytest.mark.parametrize("modname", MODULES)
def test_setup_and_one_call_on_smallest_params(suite, modname):
    """setup + one call of every benchmark method (skips: NotImplementedError)."""
    ran = 0
    for mod, name, cls in benchmark_classes(suite):
        if mod != modname:
            continue
        params = smallest(cls)
        if name == "ColdCompile":
            params = ["sweep_risk"]  # the cheapest kernel to compile
        for method in methods(cls):
            if name == "ColdCompile" and method == "track_cached_first_call_seconds":
                continue  # the same subprocess, twice: covered by the cold one
            bench = cls()
            try:
                bench.setup(*params)
            except NotImplementedError as exc:  # a skip, e.g. mpmath missing
                pytest.skip(f"{name}: {exc}")
            try:
                result = getattr(bench, method)(*params)
            finally:
                if hasattr(bench, "teardown"):
                    bench.teardown(*params)
            if method.startswith("track_"):
                assert isinstance(result, (int, float)) and math.isfinite(result), (
                    f"{name}.{method} returned {result!r}"
                )
                assert result > 0, f"{name}.{method} returned {result!r}"
            ran += 1
    assert ran


@pytest.mark.filterwarnings("ignore::fastsd.exceptions.IllConditionedXiWarning")
@pytest.mark.filterwarnings("ignore:decompose\\(backend=:FutureWarning")
def test_accuracy_is_at_working_precision(suite):
    acc = suite["accuracy"]
    bench = acc.OptimalRiskHighPrecision()
    bench.setup("numpy", 6, 1e4)
    assert bench.track_max_rel_error("numpy", 6, 1e4) < 1e-10


def test_mp_reference_one_step_closed_form(suite):
    """k = 1: u = c q with c = sum a q u* / sum a q^2, independent of the QR solve."""
    mpmath = pytest.importorskip("mpmath")
    acc = suite["accuracy"]
    rng = np.random.default_rng(3)
    s2, t = np.sort(rng.uniform(0.1, 10.0, 5))[::-1], rng.standard_normal(5)
    var, n, lam = 0.7, 20, 1.3
    got = acc.mp_optimal_risk(s2, t, var, n, lam, 1)[0]
    with mpmath.workdps(50):
        r = [mpmath.mpf(x) / (mpmath.mpf(x) + lam) for x in s2]
        q = [1 - ri for ri in r]
        bw = [mpmath.mpf(x) / n * mpmath.mpf(ti) ** 2 for x, ti in zip(s2, t)]
        nw = [mpmath.mpf(x) / n * var * mpmath.mpf(x) / (mpmath.mpf(x) + lam) ** 2 for x in s2]
        a = [ri * ri * b + e for ri, b, e in zip(r, bw, nw)]
        us = [(e - b * ri * qi) / ai for e, b, ri, qi, ai in zip(nw, bw, r, q, a)]
        c = mpmath.fsum(ai * qi * ui for ai, qi, ui in zip(a, q, us)) / mpmath.fsum(
            ai * qi * qi for ai, qi in zip(a, q)
        )
        want = mpmath.fsum(
            b * (qi + ri * c * qi) ** 2 + e * (1 - c * qi) ** 2
            for b, e, ri, qi in zip(bw, nw, r, q)
        )
        assert abs(got - want) <= mpmath.mpf(10) ** -40 * abs(want)


def test_max_rel_error_conventions(suite):
    common = importlib.import_module("benchmarks.common")
    assert common.max_rel_error([1.0, 2.0], [1.0, 2.0]) == common.ERROR_FLOOR
    assert common.max_rel_error([1.0, np.nan], [1.0, np.nan]) == common.ERROR_FLOOR
    assert common.max_rel_error([1.0, np.nan], [1.0, 2.0]) == 1.0
    assert common.max_rel_error([1.1], [1.0]) == pytest.approx(0.1)
    # normwise: an error of 1e-3 next to 0 is small relative to the vector's scale
    assert common.max_rel_error([1e-3, 1.0], [0.0, 1.0], normwise=True) == pytest.approx(1e-3)
    assert common.max_rel_error([1e-3, 1.0], [0.0, 1.0]) > 1e300  # elementwise: 1e-3 / tiny


def all_combinations(suite):
    """asv's names for the parameter combinations: 'name(param_repr, ...)'."""
    names = []
    for modname, name, cls in benchmark_classes(suite):
        params = getattr(cls, "params", [])
        for method in methods(cls):
            full = f"{modname}.{name}.{method}"
            if not params:
                names.append(full)
            for combo in itertools.product(*params):
                names.append(f"{full}({', '.join(repr(v) for v in combo)})")
    return names


def test_smoke_subset_selects_every_class(suite):
    common = importlib.import_module("benchmarks.common")
    combos = all_combinations(suite)
    for regex in common.SMOKE_BENCH:
        assert any(re.search(regex, c) for c in combos), f"{regex} selects nothing"
    selected = {
        c.split("(")[0].rsplit(".", 1)[0]
        for c in combos
        if any(re.search(r, c) for r in common.SMOKE_BENCH)
    }
    every = {f"{m}.{n}" for m, n, _ in benchmark_classes(suite)}
    assert selected == every
    n_selected = sum(any(re.search(r, c) for r in common.SMOKE_BENCH) for c in combos)
    assert n_selected < len(combos) // 4  # a small subset


@pytest.mark.slow
def test_asv_check(tmp_path):
    conf = json.loads((ROOT / "asv.conf.json").read_text())
    conf.update(
        repo=str(ROOT),
        benchmark_dir=str(ROOT / "benchmarks"),
        env_dir=str(tmp_path / "env"),
        results_dir=str(tmp_path / "results"),
        html_dir=str(tmp_path / "html"),
    )
    path = tmp_path / "asv.conf.json"
    path.write_text(json.dumps(conf))
    proc = subprocess.run(
        [sys.executable, "-m", "asv", "check", "--python=same", "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No problems found" in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FASTSD_ASV_DASHBOARD") != "1",
    reason="set FASTSD_ASV_DASHBOARD=1 to build the dashboard (minutes)",
)
def test_dashboard_reduced(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "asv_dashboard.py"),
            "--reduced",
            "--commits",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert "OK in" in proc.stdout


def history_classes(suite):
    """(module, name, class) of the benchmarks that HISTORY_BENCH selects (some of its methods)."""
    common = importlib.import_module("benchmarks.common")
    return [
        (m, n, c)
        for m, n, c in benchmark_classes(suite)
        if any(re.search(r, f"{m}.{n}.{meth}") for r in common.HISTORY_BENCH for meth in methods(c))
    ]


def test_history_benchmarks_have_explicit_versions(suite):
    """The stored history survives edits of the code: every class sets ``version`` itself."""
    common = importlib.import_module("benchmarks.common")
    classes = history_classes(suite)
    assert {m for m, _, _ in classes} == set(common.HISTORY_MODULES) <= set(MODULES)
    for regex in common.HISTORY_BENCH:
        assert any(re.search(regex, f"{m}.{n}.") for m, n, _ in classes), regex
    for modname, name, cls in classes:
        assert isinstance(vars(cls).get("version"), str), f"{modname}.{name} has no own version"


def test_history_benchmarks_use_only_the_public_api(suite):
    """No module path inside the package: the history runs on old commits and new layouts."""
    import fastsd

    public = set(fastsd.__all__)
    for modname in sorted({m for m, _, _ in history_classes(suite)}):
        tree = ast.parse(inspect.getsource(suite[modname]))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bad = [a.name for a in node.names if a.name.startswith("fastsd.")]
                assert not bad, (modname, ast.unparse(node))
            elif isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("fastsd"), (modname, ast.unparse(node))
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "fastsd"
            ):
                assert node.attr in public, f"{modname}: fastsd.{node.attr} is not public"
