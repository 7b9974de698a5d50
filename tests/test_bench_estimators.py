"""pytest-benchmark: SelfDistilledRidgeCV against scikit-learn's RidgeCV.

Skipped by default (``--benchmark-skip`` in pyproject); run with
``pytest tests/test_bench_estimators.py --benchmark-only``. Same data
(n = 2000, d = 50) and the same 13-value lambda grid for every entry:

* ``ridgecv``: sklearn's RidgeCV, efficient (GCV-mode) leave-one-out;
* ``fastsd_k0_loo``: fastsd's ridge-only path (max_steps = 0, exact LOO);
  goal: at least as fast as RidgeCV;
* ``fastsd_k5_{safe,loo,holdout}``, ``fastsd_k1_gcv`` (GCV refuses k >= 2):
  tuning lambda, k and xi; goal: less than 3x RidgeCV.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pytest_benchmark")

from sklearn.linear_model import RidgeCV  # noqa: E402

from fastsd import IllConditionedXiWarning  # noqa: E402
from fastsd.estimators import SelfDistilledRidgeCV  # noqa: E402

N, D = 2000, 50
LAMS = np.logspace(-3, 3, 13)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D)) * np.linspace(0.2, 3.0, D)
    y = X @ rng.normal(size=D) + 1.0 + rng.normal(size=N)
    return X, y


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedXiWarning)
        return est.fit(X, y)


@pytest.mark.benchmark(group="ridgecv-vs-fastsd")
def test_ridgecv(benchmark, data):
    X, y = data
    benchmark(lambda: RidgeCV(alphas=LAMS).fit(X, y))


@pytest.mark.benchmark(group="ridgecv-vs-fastsd")
def test_fastsd_k0_loo(benchmark, data):
    X, y = data
    est = benchmark(lambda: _fit(SelfDistilledRidgeCV(lams=LAMS, max_steps=0, tuning="loo"), X, y))
    assert est.k_ == 0
    assert est.lam_ == RidgeCV(alphas=LAMS).fit(X, y).alpha_


@pytest.mark.benchmark(group="ridgecv-vs-fastsd")
def test_fastsd_k0_gcv(benchmark, data):
    X, y = data
    benchmark(lambda: _fit(SelfDistilledRidgeCV(lams=LAMS, max_steps=0, tuning="gcv"), X, y))


@pytest.mark.benchmark(group="ridgecv-vs-fastsd")
@pytest.mark.parametrize("tuning", ["safe", "loo", "holdout"])
def test_fastsd_k5(benchmark, data, tuning):
    X, y = data
    benchmark(
        lambda: _fit(
            SelfDistilledRidgeCV(lams=LAMS, max_steps=5, tuning=tuning, random_state=0), X, y
        )
    )


@pytest.mark.benchmark(group="ridgecv-vs-fastsd")
def test_fastsd_k1_gcv(benchmark, data):
    X, y = data
    benchmark(lambda: _fit(SelfDistilledRidgeCV(lams=LAMS, max_steps=1, tuning="gcv"), X, y))
