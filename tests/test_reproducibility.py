"""Same inputs, same bytes: compiled vs cached kernels, CPU targets, threads, block plans.

One child process computes every sweep kind, the single-problem API and the
estimators on small inputs, each with 1 and 2 kernel threads and (for the
chunked sweeps) two block plans, and saves the bytes. It runs three times:

* with an empty ``NUMBA_CACHE_DIR`` (every kernel compiled in the process),
* again on the cache the first run wrote (every kernel loaded from disk),
* with ``NUMBA_CPU_NAME=generic`` and its own empty cache (code for a
  baseline x86-64 CPU: no AVX, no FMA instruction).

Within a run, thread counts and block plans must agree byte for byte; across
runs, every array must be identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

CHILD = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    import fastsd
    from fastsd import _jit

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(7)
    B, n, d = 5, 24, 7  # p = 7: an odd number of directions
    X = rng.normal(size=(B, n, d))
    X[1, :, 3] = X[1, :, 0]  # a rank-deficient problem
    th = rng.normal(size=(B, d))
    y = np.einsum("bnd,bd->bn", X, th) + rng.normal(size=(B, n))
    Xv = rng.normal(size=(B, 9, d))
    yv = np.einsum("bnd,bd->bn", Xv, th) + rng.normal(size=(B, 9))
    var = np.linspace(0.2, 1.0, B)
    lams = np.logspace(-3, 3, 6)
    xis = np.array([-0.7, 0.4, 1.3])
    schedules = rng.normal(size=(4, 4))
    students = np.array([0.05, 2.0])
    cov = np.eye(d) + 0.2
    K = 4
    pts = rng.normal(size=(2, 15, 2))
    gram = np.exp(-0.5 * np.sum((pts[:, :, None] - pts[:, None]) ** 2, axis=-1))
    f_star = np.sin(pts[..., 0])
    y_k = f_star + 0.1 * rng.normal(size=f_star.shape)

    def kernels():
        out = {}
        dec = fastsd.decompose(X, y)
        out["risk"] = fastsd.sweep_risk(dec, th, var, lams, xis, K)
        out["risk_schedules"] = fastsd.sweep_risk(dec, th, var, lams, schedules, K)
        out["risk_steps"] = fastsd.sweep_risk(dec, th, var, lams, xis, K, student_lams=students)
        out["risk_population"] = fastsd.sweep_risk(dec, th, var, lams, xis, K, cov=cov)
        out["mse"] = fastsd.sweep_mse(dec, None, Xv, yv, lams, xis, K)
        out["mse_steps"] = fastsd.sweep_mse(dec, None, Xv, yv, lams, xis, K, student_lams=students)
        for tag, kw in (("", {}), ("_steps", {"student_lams": students})):
            out["optimal_risk" + tag], out["optimal_xi" + tag] = fastsd.sweep_optimal(
                dec, th, var, lams, K, **kw
            )
            out["validation_mse" + tag], out["validation_xi" + tag] = (
                fastsd.sweep_optimal_validation(dec, None, Xv, yv, lams, K, **kw)
            )
        kdec = fastsd.decompose_kernel(gram, y_k)
        out["kernel_risk"] = fastsd.sweep_risk(kdec, f_star, 0.01, lams, xis, K)
        out["kernel_optimal_risk"], out["kernel_optimal_xi"] = fastsd.sweep_optimal(
            kdec, f_star, 0.01, lams, K, student_lams=students
        )
        for limit, plan in ((22_000, "small"), (1 << 30, "large")):  # small: 1 problem, lambdas split
            out["chunked_risk_" + plan] = fastsd.sweep_risk_chunked(
                X, th, var, lams, xis, K, memory_limit=limit
            )
            out["chunked_optimal_risk_" + plan], out["chunked_optimal_xi_" + plan] = (
                fastsd.sweep_optimal_chunked(X, th, var, lams, K, memory_limit=limit)
            )
        return out

    def single():
        from fastsd import SelfDistilledKernelRidgeCV, SelfDistilledRidge, SelfDistilledRidgeCV
        out = {}
        X0, y0, th0, Xv0, yv0 = X[0], y[0], th[0], Xv[0], yv[0]
        out["self_distill"] = fastsd.self_distill(X0, y0, lams, [0.5, 1.5])
        out["excess_risk"] = fastsd.excess_risk(X0, th0, 0.5, lams, [0.5, 1.5])
        out["oracle_risk"] = fastsd.oracle_risk(X0, th0, 0.5, lams)
        out["optimal_xi"], out["optimal_xi_risk"] = fastsd.optimal_xi(X0, th0, 0.5, lams, K)
        out["optimal_xi_validation"], out["optimal_xi_validation_mse"] = (
            fastsd.optimal_xi_validation(X0, y0, Xv0, yv0, lams, K)
        )
        out["ridge_coef"] = SelfDistilledRidge(lam=0.3, xi=[0.5, 1.2]).fit(X0, y0).coef_
        out["ridge_cv_coef"] = SelfDistilledRidgeCV(max_steps=3).fit(X0, y0).coef_
        kcv = SelfDistilledKernelRidgeCV(max_steps=2, random_state=0).fit(pts[0], y_k[0])
        out["kernel_ridge_cv_dual"] = kcv.dual_coef_
        return out

    results = {}
    for count in (1, 2):
        with fastsd.threads(count):
            for key, value in kernels().items():
                results[f"{key}@{count}"] = np.asarray(value)
    results.update({k: np.asarray(v) for k, v in single().items()})
    np.savez(sys.argv[1], **results)
    print("KERNELS", sorted(d.py_func.__name__ for d in _jit._DISPATCHERS if d.signatures))
""")


def _run(tmp_path, name, cache, **env):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / f"{name}.npz"
    environ = dict(os.environ, NUMBA_CACHE_DIR=str(cache), **env)
    environ.pop("NUMBA_DISABLE_JIT", None)
    return subprocess.Popen(
        [sys.executable, str(script), str(out)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ), out


def _finish(proc_out):
    proc, out = proc_out
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, f"child failed:\n{stdout}\n{stderr[-4000:]}"
    with np.load(out) as data:
        return {key: data[key] for key in data.files}, stdout


def _differences(a, b):
    assert sorted(a) == sorted(b)
    return [key for key in a if a[key].tobytes() != b[key].tobytes()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The child's results: compiled (host), loaded from that cache, compiled (generic)."""
    root = tmp_path_factory.mktemp("repro")
    host, generic = root / "cache-host", root / "cache-generic"
    compiled = _run(root, "compiled", host)  # the two compiling runs side by side
    baseline = _run(root, "generic", generic, NUMBA_CPU_NAME="generic")
    first, log = _finish(compiled)
    other = _finish(baseline)[0]
    cached_run = _run(root, "cached", host)
    cached, cached_log = _finish(cached_run)
    assert list(host.rglob("*.nbc")), "the first run wrote no cache"
    return {"compiled": first, "cached": cached, "generic": other, "log": log}


@pytest.mark.slow
def test_compiled_and_cached_kernels_give_the_same_bytes(runs):
    assert _differences(runs["compiled"], runs["cached"]) == []


@pytest.mark.slow
def test_generic_and_host_cpu_targets_give_the_same_bytes(runs):
    assert _differences(runs["compiled"], runs["generic"]) == []


@pytest.mark.slow
@pytest.mark.parametrize("run", ["compiled", "cached", "generic"])
def test_thread_counts_give_the_same_bytes(runs, run):
    result = runs[run]
    ones = [key for key in result if key.endswith("@1")]
    assert len(ones) > 20
    assert [k for k in ones if result[k].tobytes() != result[k[:-1] + "2"].tobytes()] == []


@pytest.mark.slow
@pytest.mark.parametrize("run", ["compiled", "generic"])
def test_block_plans_give_the_same_bytes(runs, run):
    """A problem decomposed and swept alone or in a block of five: the same bytes,
    and the same as the whole batch in one call."""
    result = runs[run]
    for count in (1, 2):
        small = {k: v for k, v in result.items() if k.endswith(f"_small@{count}")}
        assert len(small) == 3
        for key, value in small.items():
            assert value.tobytes() == result[key.replace("_small", "_large")].tobytes(), key
        assert result[f"chunked_risk_large@{count}"].tobytes() == result[f"risk@{count}"].tobytes()


@pytest.mark.slow
def test_every_kernel_ran(runs):
    """The child compiled every kernel of the package (none left untested)."""
    for name in (
        "_sweep_risk_pairs",
        "_sweep_mse_pairs",
        "_sweep_risk_population_pairs",
        "_sweep_optimal_pairs",
        "_sweep_optimal_validation_pairs",
        "_sweep_optimal_steps_pairs",
        "_sweep_optimal_validation_steps_pairs",
    ):
        assert name in runs["log"], name


STORE_CONFIG = """
[problems]
{problems}

[grid]
lams = {{ start = 1e-3, stop = 1e3, num = 6 }}
max_steps = 3
{xis}

[run]
selection = "{selection}"
output = "{output}"
block = {block}
"""


@pytest.mark.parametrize("selection", ["oracle", "fixed", "validation"])
def test_store_block_plans_give_the_same_bytes(tmp_path, selection):
    """``fastsd sweep`` with blocks of 1 and of 3 problems: the same stored bytes."""
    pytest.importorskip("zarr")
    pytest.importorskip("xarray")
    import fastsd
    from fastsd.cli import main

    if selection == "validation":
        problems = 'source = "dataset"\nname = "airfoil"\nseeds = [0, 1, 2, 3, 4]'
    else:
        problems = (
            'source = "synthetic"\nfamily = "theorem1_family"\n'
            "params = { ranks = [2, 3, 4, 5, 6], seed = 3 }"
        )
    xis = "xis = [-0.5, 0.5, 1.5]" if selection == "fixed" else ""
    stores = []
    for block in (1, 3):
        output = tmp_path / f"out{block}"
        config = tmp_path / f"sweep{block}.toml"
        config.write_text(
            STORE_CONFIG.format(
                problems=problems, xis=xis, selection=selection, output=output, block=block
            )
        )
        assert main(["sweep", str(config), "--no-progress"]) == 0
        stores.append(fastsd.load_sweep(output).to_xarray().load())
    one, three = stores
    assert sorted(one.data_vars) == sorted(three.data_vars)
    for name in one.data_vars:
        assert one[name].values.tobytes() == three[name].values.tobytes(), name


@pytest.mark.parametrize("shape", [(16, 300, 64), (16, 40, 8), (6, 64, 300)])
@pytest.mark.parametrize("threads", [1, 2])
def test_decomposition_of_a_problem_does_not_depend_on_its_batch(shape, threads):
    """A problem decomposed alone, with two others, or in a block of many: the same
    bytes (the route follows one problem's shape, never the batch size)."""
    import fastsd

    X = np.random.default_rng(11).normal(size=shape)
    whole = fastsd.decompose(X, threads=threads)
    for part in (X[:1], X[:3]):
        alone = fastsd.decompose(part, threads=threads)
        assert alone.s2[0].tobytes() == whole.s2[0].tobytes()
        assert alone.V[0].tobytes() == whole.V[0].tobytes()
