"""Tuning rules against explicit, independent computations.

* gcv: the generalized one-shot rule against explicit n x n smoother matrices
  H, H^2, ...; for k = 1 the Dang-Patil-Rinaldo closed form.
* loo: exact leave-one-out of the whole k-step procedure against brute-force
  refits (delete point i, refit with fastsd.self_distill, predict point i),
  and k = 0 against scikit-learn's RidgeCV.
* holdout: against fastsd.optimal_xi_validation.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.linear_model import RidgeCV  # noqa: E402

import fastsd  # noqa: E402
from fastsd.estimators import (  # noqa: E402
    SelfDistilledRidge,
    SelfDistilledRidgeCV,
    loo_predictions,
)
from fastsd.estimators._base import _Prepared  # noqa: E402
from fastsd.estimators._gcv import gcv_table  # noqa: E402
from fastsd.estimators._holdout import holdout_table  # noqa: E402
from fastsd.estimators._loo import loo_table  # noqa: E402
from fastsd.reference import XI_RTOL  # noqa: E402

SHAPES = [(25, 6), (8, 14)]  # n > d and n < d


def _problem(n, d, seed, targets=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.3, 3.0, size=d) + rng.normal(size=d)
    shape = (d,) if targets is None else (d, targets)
    noise = rng.normal(size=(n,) if targets is None else (n, targets))
    return X, X @ rng.normal(size=shape) + 1.5 + noise


def _weights(n, seed):
    return np.random.default_rng(seed).uniform(0.3, 3.0, size=n)


def _table(rule, X, y, lams, K, fit_intercept=True, w=None):
    prep = _Prepared(X, y, w, fit_intercept)
    dec, _ = prep.decompose()
    if rule == "gcv":
        return gcv_table(dec.U, dec.s2, prep.Y, prep.w_sum, fit_intercept, lams, K)
    return loo_table(dec.U, dec.s2, prep.Y, prep.sqrt_w, prep.w_sum, fit_intercept, lams, K)


# ---------------------------------------------------------------------------
# GCV
# ---------------------------------------------------------------------------


def _explicit_smoother(X, lam, fit_intercept):
    n, d = X.shape
    Xc = X - X.mean(axis=0) if fit_intercept else X
    H = Xc @ np.linalg.solve(Xc.T @ Xc + lam * np.eye(d), Xc.T)
    return H + np.full((n, n), 1.0 / n) if fit_intercept else H


def _explicit_cross_risk(X, y, lam, K, fit_intercept):
    """R_lm = <(I - H^{l+1})y, (I - H^{m+1})y>/n / [(1 - tr H^{l+1}/n)(1 - tr H^{m+1}/n)]."""
    n = X.shape[0]
    H = _explicit_smoother(X, lam, fit_intercept)
    I = np.eye(n)
    Hm, resid, rho = I, [], []
    for _ in range(K + 1):
        Hm = Hm @ H
        resid.append((I - Hm) @ y)
        rho.append(1.0 - np.trace(Hm) / n)
    E = np.array(resid) / np.array(rho)[:, None]
    return E @ E.T / n


# the formula is checked on every shape; where GCV is exploited the guard warns
@pytest.mark.filterwarnings("ignore::fastsd.exceptions.TuningWarning")
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("lam", [0.3, 4.0, 50.0])
def test_gcv_one_step_is_dang_patil_rinaldo(shape, fit_intercept, lam):
    X, y = _problem(*shape, seed=1)
    n = X.shape[0]
    H = _explicit_smoother(X, lam, fit_intercept)
    H2 = H @ H
    I = np.eye(n)
    e1, e2 = (I - H) @ y, (I - H2) @ y
    t1, t2 = 1 - np.trace(H) / n, 1 - np.trace(H2) / n
    R = e1 @ e1 / n / t1**2
    R_pd = e2 @ e2 / n / t2**2
    C = e1 @ e2 / n / (t1 * t2)
    xi_dpr = (R - C) / (R + R_pd - 2 * C)

    table = _table("gcv", X, y, np.array([lam]), 1, fit_intercept)
    assert table.valid[0, 1]
    np.testing.assert_allclose(table.xi[0, 1, 0], xi_dpr, rtol=1e-9)
    np.testing.assert_allclose(table.risk[0, 0], R, rtol=1e-10)
    risk_dpr = (1 - xi_dpr) ** 2 * R + 2 * xi_dpr * (1 - xi_dpr) * C + xi_dpr**2 * R_pd
    np.testing.assert_allclose(table.risk[0, 1], risk_dpr, rtol=1e-10)

    # through the estimator (one lambda, K = 1)
    cv = SelfDistilledRidgeCV(
        lams=[lam], max_steps=1, tuning="gcv", fit_intercept=fit_intercept
    ).fit(X, y)
    np.testing.assert_allclose(cv.cv_results_["xi"][0, 1, 0], xi_dpr, rtol=1e-9)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gcv_k_steps_is_constrained_minimum_of_cross_risk(shape, fit_intercept):
    X, y = _problem(*shape, seed=2)
    lam, K = 20.0, 3
    R = _explicit_cross_risk(X, y, lam, K, fit_intercept)
    table = _table("gcv", X, y, np.array([lam]), K, fit_intercept)
    for k in range(K + 1):
        Rk = R[: k + 1, : k + 1]
        c = np.linalg.solve(Rk, np.ones(k + 1))
        c /= c.sum()
        np.testing.assert_allclose(table.risk[0, k], c @ Rk @ c, rtol=1e-7)
        if k and table.valid[0, k]:
            # the schedule realizes the smoother sum_m c_m H^{m+1}
            fit = SelfDistilledRidge(
                lam=lam, xi=table.xi[0, k, :k], fit_intercept=fit_intercept
            ).fit(X, y)
            H = _explicit_smoother(X, lam, fit_intercept)
            pred = sum(cm * np.linalg.matrix_power(H, m + 1) @ y for m, cm in enumerate(c))
            np.testing.assert_allclose(fit.predict(X), pred, rtol=1e-6, atol=1e-8)


def test_gcv_weights_are_frequencies():
    X, y = _problem(15, 5, seed=3)
    w = np.random.default_rng(4).integers(0, 4, size=15).astype(float)
    w[0] = 2.0
    lams = np.logspace(-2, 2, 5)
    weighted = _table("gcv", X, y, lams, 2, True, w)
    rep = np.repeat(np.arange(15), w.astype(int))
    repeated = _table("gcv", X[rep], y[rep], lams, 2, True)
    np.testing.assert_allclose(weighted.risk, repeated.risk, rtol=1e-8)


# ---------------------------------------------------------------------------
# exact leave-one-out
# ---------------------------------------------------------------------------


def _brute_force_loo(X, y, lam, xi, fit_intercept, w=None):
    """Delete point i, refit the whole procedure with fastsd.self_distill, predict i."""
    n = X.shape[0]
    w = np.ones(n) if w is None else w
    out = np.empty(y.shape)
    for i in range(n):
        keep = np.arange(n) != i
        Xi, yi, wi = X[keep], y[keep], w[keep]
        if fit_intercept:
            xm = wi @ Xi / wi.sum()
            ym = wi @ yi / wi.sum()
        else:
            xm, ym = np.zeros(X.shape[1]), np.zeros(y.shape[1:])
        sw = np.sqrt(wi)
        Xs = (Xi - xm) * sw[:, None]
        Ys = (yi - ym) * (sw[:, None] if y.ndim == 2 else sw)
        if y.ndim == 1:
            theta = fastsd.self_distill(Xs, Ys, lam, xi)
        else:
            theta = np.stack(
                [fastsd.self_distill(Xs, Ys[:, t], lam, xi) for t in range(y.shape[1])], axis=-1
            )
        out[i] = (X[i] - xm) @ theta + ym
    return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("xi", [(), (0.6,), (1.5, -0.7), (0.4, 2.5, 1.1)])
def test_loo_predictions_equal_brute_force(shape, fit_intercept, xi):
    X, y = _problem(*shape, seed=5)
    for lam in (0.2, 3.0):
        fast = loo_predictions(X, y, lam, xi, fit_intercept=fit_intercept)
        slow = _brute_force_loo(X, y, lam, xi, fit_intercept)
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9 * np.abs(slow).max())


@pytest.mark.parametrize("shape", SHAPES)
def test_loo_predictions_weighted_multi_target(shape):
    X, Y = _problem(*shape, seed=6, targets=2)
    w = _weights(shape[0], 7)
    xi = (0.8, 1.6)
    fast = loo_predictions(X, Y, 1.0, xi, sample_weight=w)
    slow = _brute_force_loo(X, Y, 1.0, xi, True, w)
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9 * np.abs(slow).max())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_loo_table_risks_equal_brute_force(shape, weighted):
    X, y = _problem(*shape, seed=8)
    w = _weights(shape[0], 9) if weighted else None
    lams = np.array([0.5, 5.0])
    K = 3
    table = _table("loo", X, y, lams, K, True, w)
    ww = np.ones(shape[0]) if w is None else w
    for l, lam in enumerate(lams):
        for k in range(K + 1):
            if not table.valid[l, k]:
                continue
            xi = table.xi[l, k, :k]
            pred = _brute_force_loo(X, y, lam, xi, True, w)
            fast = loo_predictions(X, y, lam, xi, sample_weight=w)
            # optimal xi can be large (here up to ~1e6): the xibar route then loses
            # about eps * |xibar| / (1 - leverage) relative accuracy (the refits,
            # applying xi step by step, do not)
            tol = max(1e-9, 1e-11 * np.abs(fastsd.xi_to_xibar(xi)).sum())
            np.testing.assert_allclose(fast, pred, rtol=tol, atol=tol * np.abs(pred).max())
            # the tabulated optimum is reproduced by its xi to XI_RTOL
            brute = ww @ (y - pred) ** 2 / ww.sum()
            np.testing.assert_allclose(table.risk[l, k], brute, rtol=XI_RTOL)
    assert table.valid[:, :2].all()


@pytest.mark.parametrize("shape", SHAPES)
def test_loo_optimal_xi_is_a_minimum(shape):
    X, y = _problem(*shape, seed=10)
    lam = 2.0
    table = _table("loo", X, y, np.array([lam]), 2)
    for k in (1, 2):
        xi = table.xi[0, k, :k]
        best = np.mean((y - loo_predictions(X, y, lam, xi)) ** 2)
        for step in range(k):
            for delta in (-1e-3, 1e-3):
                moved = xi.copy()
                moved[step] += delta * max(1.0, abs(moved[step]))
                other = np.mean((y - loo_predictions(X, y, lam, moved)) ** 2)
                assert other >= best * (1 - 1e-12)


def _ridge_cv_loo(X, y, alphas, fit_intercept):
    store = (
        "store_cv_results"
        if "store_cv_results" in inspect.signature(RidgeCV).parameters
        else "store_cv_values"
    )
    ref = RidgeCV(alphas=alphas, fit_intercept=fit_intercept, **{store: True}).fit(X, y)
    values = ref.cv_results_ if hasattr(ref, "cv_results_") else ref.cv_values_
    return values.mean(axis=0), ref.alpha_


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_loo_equals_sklearn_ridgecv(shape, fit_intercept):
    X, y = _problem(*shape, seed=11)
    alphas = np.logspace(-2, 3, 11)  # sklearn's alpha is our lam (no n scaling)
    ref, alpha = _ridge_cv_loo(X, y, alphas, fit_intercept)
    table = _table("loo", X, y, alphas, 0, fit_intercept)
    np.testing.assert_allclose(table.risk[:, 0], ref, rtol=1e-9)
    cv = SelfDistilledRidgeCV(
        lams=alphas, max_steps=0, tuning="loo", fit_intercept=fit_intercept
    ).fit(X, y)
    assert cv.lam_ == alpha


def test_loo_zero_weight_is_absent():
    X, y = _problem(20, 5, seed=12)
    w = np.ones(20)
    w[[1, 4]] = 0.0
    lams = np.array([0.3, 3.0])
    a = _table("loo", X, y, lams, 2, True, w)
    b = _table("loo", X[w > 0], y[w > 0], lams, 2, True)
    np.testing.assert_allclose(a.risk, b.risk, rtol=1e-10)
    np.testing.assert_allclose(a.xi[:, 1:], b.xi[:, 1:], rtol=1e-7)


def test_loo_undefined_at_leverage_one():
    X, y = _problem(6, 10, seed=13)
    table = _table("loo", X, y, np.array([0.0, 1.0]), 1)
    assert np.isinf(table.risk[0]).all() and not table.valid[0].any()
    assert np.isfinite(table.risk[1]).all()


# ---------------------------------------------------------------------------
# holdout
# ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::fastsd.IllConditionedXiWarning")
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_holdout_matches_optimal_xi_validation(fit_intercept):
    X, y = _problem(40, 6, seed=14)
    Xv, yv = _problem(15, 6, seed=15)
    lams = np.array([0.1, 1.0, 10.0])
    K = 3
    table = holdout_table(X, y, Xv, yv, lams, K, fit_intercept=fit_intercept)
    if fit_intercept:
        xm, ym = X.mean(axis=0), y.mean()
        args = (X - xm, y - ym, Xv - xm, yv - ym)
    else:
        args = (X, y, Xv, yv)
    for k in range(K + 1):
        xi, mse = fastsd.optimal_xi_validation(*args, lams, k)
        np.testing.assert_allclose(table.risk[:, k], mse, rtol=1e-9)
        ok = table.valid[:, k]
        np.testing.assert_allclose(table.xi[ok, k, :k], xi[ok], rtol=1e-7)


def test_holdout_multi_target_shares_one_schedule():
    X, Y = _problem(40, 5, seed=16, targets=2)
    Xv, Yv = _problem(20, 5, seed=17, targets=2)
    lam = 2.0
    table = holdout_table(X, Y, Xv, Yv, np.array([lam]), 1)

    def val_mse(xi):
        fit = SelfDistilledRidge(lam=lam, xi=xi).fit(X, Y)
        return np.mean((fit.predict(Xv) - Yv) ** 2)

    xi = table.xi[0, 1, :1]
    np.testing.assert_allclose(table.risk[0, 1], val_mse(xi), rtol=1e-9)
    grid = xi[0] + np.linspace(-0.5, 0.5, 41)
    assert all(val_mse([g]) >= table.risk[0, 1] * (1 - 1e-12) for g in grid)
    np.testing.assert_allclose(table.risk[0, 0], val_mse([]), rtol=1e-9)
