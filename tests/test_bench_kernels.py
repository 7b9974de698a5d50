"""pytest-benchmark: every Numba kernel beside its NumPy reference.

Skipped in the default test run (``--benchmark-skip`` in pyproject's addopts).
Run them with::

    python -m pytest tests/test_bench_kernels.py --benchmark-only

Each group holds the numba and numpy variants of one kernel on the same
modest workload, so the table's ratio is the speed-up. Kernels are compiled
(or loaded from the cache) by a warm-up call before timing starts.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastsd

BACKENDS = ("numba", "numpy")

# modest workload: the whole file runs in well under a minute when enabled
B, N, D = 64, 64, 16
LAMS = np.logspace(-4, 4, 32)
XIS = np.linspace(-1.0, 2.0, 8)
K = 6
N_VAL = 32


@pytest.fixture(scope="module")
def workload():
    rng = np.random.default_rng(20240601)
    X = rng.normal(size=(B, N, D))
    theta = rng.normal(size=(B, D))
    noise_var = rng.uniform(0.5, 2.0, size=B)
    y = np.einsum("bnd,bd->bn", X, theta) + rng.normal(size=(B, N))
    X_val = rng.normal(size=(B, N_VAL, D))
    y_val = np.einsum("bnd,bd->bn", X_val, theta) + rng.normal(size=(B, N_VAL))
    dec = fastsd.decompose(X, y)
    return dict(X=X, theta=theta, noise_var=noise_var, y=y, X_val=X_val, y_val=y_val, dec=dec)


def _bench(benchmark, fn):
    fn()  # warm-up outside the timed region: JIT compile or cache load
    benchmark.extra_info["workload"] = f"B={B} n={N} d={D} L={LAMS.size} G={XIS.size} K={K}"
    return benchmark(fn)


@pytest.mark.benchmark(group="decompose")
@pytest.mark.parametrize("backend", BACKENDS)
def test_bench_decompose(benchmark, workload, backend):
    X = np.random.default_rng(1).normal(size=(256, N, D))
    dec = _bench(benchmark, lambda: fastsd.decompose(X, backend=backend))
    assert dec.s2.shape == (256, D)


@pytest.mark.benchmark(group="sweep_risk")
@pytest.mark.parametrize("backend", BACKENDS)
def test_bench_sweep_risk(benchmark, workload, backend):
    w = workload
    out = _bench(
        benchmark,
        lambda: fastsd.sweep_risk(
            w["dec"], w["theta"], w["noise_var"], LAMS, XIS, K, backend=backend
        ),
    )
    assert out.shape == (B, LAMS.size, XIS.size, K + 1)


@pytest.mark.benchmark(group="sweep_optimal")
@pytest.mark.parametrize("backend", BACKENDS)
def test_bench_sweep_optimal(benchmark, workload, backend):
    w = workload
    risk, _ = _bench(
        benchmark,
        lambda: fastsd.sweep_optimal(
            w["dec"], w["theta"], w["noise_var"], LAMS, K, backend=backend
        ),
    )
    assert risk.shape == (B, LAMS.size, K + 1)


@pytest.mark.benchmark(group="sweep_mse")
@pytest.mark.parametrize("backend", BACKENDS)
def test_bench_sweep_mse(benchmark, workload, backend):
    w = workload
    out = _bench(
        benchmark,
        lambda: fastsd.sweep_mse(
            w["dec"], None, w["X_val"], w["y_val"], LAMS, XIS, K, backend=backend
        ),
    )
    assert out.shape == (B, LAMS.size, XIS.size, K + 1)


@pytest.mark.benchmark(group="sweep_optimal_validation")
@pytest.mark.parametrize("backend", BACKENDS)
def test_bench_sweep_optimal_validation(benchmark, workload, backend):
    w = workload
    mse, _ = _bench(
        benchmark,
        lambda: fastsd.sweep_optimal_validation(
            w["dec"], None, w["X_val"], w["y_val"], LAMS, K, backend=backend
        ),
    )
    assert mse.shape == (B, LAMS.size, K + 1)


@pytest.mark.benchmark(group="sweep_risk_chunked")
@pytest.mark.parametrize("backend", BACKENDS)
def test_bench_sweep_risk_chunked_min(benchmark, workload, backend):
    w = workload
    best = _bench(
        benchmark,
        lambda: fastsd.sweep_risk_chunked(
            w["X"],
            w["theta"],
            w["noise_var"],
            LAMS,
            XIS,
            K,
            reduce="min",
            memory_limit=4 << 20,
            backend=backend,
        ),
    )
    assert best.risk.shape == (B, K + 1)
