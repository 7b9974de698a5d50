"""Kernel-ridge self-distillation against the literal dual refit and scikit-learn.

Literal k-step kernel SD: alpha_0 = (K + lam_0 I)^{-1} y,
alpha_i = (K + lam_i I)^{-1} (xi_i K alpha_{i-1} + (1 - xi_i) y), f(x) = K(x, X) alpha.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("sklearn")
from sklearn.kernel_ridge import KernelRidge  # noqa: E402
from sklearn.metrics.pairwise import pairwise_kernels  # noqa: E402

import fastsd  # noqa: E402
from fastsd.reference import XI_RTOL  # noqa: E402

RTOL = 1e-10


def refit_dual(K, y, lam, xi, steps=None):
    steps = [lam] * len(xi) if steps is None else steps
    n = K.shape[0]
    alpha = np.linalg.solve(K + lam * np.eye(n), y)
    for x, lam_i in zip(xi, steps):
        alpha = np.linalg.solve(K + lam_i * np.eye(n), x * (K @ alpha) + (1 - x) * y)
    return alpha


def smoother(K, lam, xi, steps=None):
    """H with fitted values f_k = H y (literal refit on unit targets)."""
    n = K.shape[0]
    return K @ np.column_stack([refit_dual(K, e, lam, xi, steps) for e in np.eye(n)])


def exact_risk(K, f_star, var, lam, xi, steps=None):
    H = smoother(K, lam, xi, steps)
    bias = H @ f_star - f_star
    return float((bias @ bias + var * np.sum(H * H)) / K.shape[0])


def _data(seed=0, n=30, d=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    f = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    return X, f, f + 0.3 * rng.normal(size=n)


KERNELS = [
    ("rbf", {"gamma": 0.4}),
    ("laplacian", {"gamma": 0.3}),
    ("polynomial", {"degree": 2, "coef0": 1.0}),
    ("linear", {}),
    (lambda a, b: np.exp(-np.abs(a - b).sum()), {}),
]


@pytest.mark.parametrize("kernel,params", KERNELS)
@pytest.mark.parametrize(
    "lam,xi,steps",
    [(0.1, [], None), (1.0, [0.6, 1.7], None), (1e-3, [-0.5, 1.2, 0.8], [1e2, 1e-4, 1.0])],
)
def test_dual_coefficients_match_refit(kernel, params, lam, xi, steps):
    X, _, y = _data()
    dec = fastsd.decompose(X, y, kernel=kernel, kernel_params=params)
    K = pairwise_kernels(X, X, metric=kernel, **params)
    got = fastsd.self_distill(dec, None, lam, xi, student_lams=steps)
    want = refit_dual(K, y, lam, xi, steps)
    # compare what the model predicts (alpha itself is ill-determined where K is singular)
    assert np.linalg.norm(K @ (got - want)) <= RTOL * np.linalg.norm(K @ want)
    if kernel in ("rbf", "laplacian"):  # well-conditioned enough to compare alpha too
        assert np.linalg.norm(got - want) <= 1e-8 * np.linalg.norm(want)


@pytest.mark.parametrize("kernel,params", KERNELS[:3])
def test_ridge_equals_sklearn_kernel_ridge(kernel, params):
    X, _, y = _data(1)
    Xt = np.random.default_rng(9).normal(size=(12, 3))
    dec = fastsd.decompose(X, y, kernel=kernel, kernel_params=params)
    for lam in (1e-2, 1.0, 50.0):
        ref = KernelRidge(alpha=lam, kernel=kernel, **params).fit(X, y)
        alpha = fastsd.self_distill(dec, None, lam, [])
        pred = dec.cross_kernel(Xt) @ alpha
        assert_allclose(pred, ref.predict(Xt), rtol=1e-10, atol=1e-12 * np.abs(y).max())


def test_batched_gram_matrices():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3, 20, 2))
    y = rng.normal(size=(3, 20))
    K = np.stack([pairwise_kernels(x, x, metric="rbf", gamma=0.7) for x in X])
    dec = fastsd.decompose_kernel(K, y)
    got = fastsd.self_distill(dec, None, np.array([0.1, 2.0]), [0.9, 1.3])
    assert got.shape == (3, 2, 20)
    for b in range(3):
        for l_idx, lam in enumerate((0.1, 2.0)):
            want = refit_dual(K[b], y[b], lam, [0.9, 1.3])
            assert np.linalg.norm(got[b, l_idx] - want) <= 1e-9 * np.linalg.norm(want)


@pytest.mark.parametrize("kernel,params", [("rbf", {"gamma": 0.4}), ("linear", {})])
@pytest.mark.parametrize("lam,xi,steps", [(0.05, [0.8], None), (2.0, [1.5, -0.3], [0.1, 5.0])])
def test_in_sample_risk_matches_refit(kernel, params, lam, xi, steps):
    # the linear kernel (d = 3 < n) has rank 3: most of f* lies outside range(K)
    X, f, _ = _data(2)
    K = pairwise_kernels(X, X, metric=kernel, **params)
    dec = fastsd.decompose_kernel(K)
    got = fastsd.excess_risk(dec, f, 0.09, lam, xi, student_lams=steps)
    want = exact_risk(K, f, 0.09, lam, xi, steps)
    assert abs(got - want) <= RTOL * want


def test_linear_kernel_is_linear_ridge():
    rng = np.random.default_rng(5)
    X, theta = rng.normal(size=(25, 4)), rng.normal(size=4)
    dec = fastsd.decompose_kernel(X @ X.T)
    for lam in (1e-2, 1.0, 1e2):
        assert_allclose(
            fastsd.excess_risk(dec, X @ theta, 0.2, lam, [0.4, 1.1]),
            fastsd.excess_risk(X, theta, 0.2, lam, [0.4, 1.1]),
            rtol=1e-9,
        )
        assert_allclose(
            fastsd.optimal_xi(dec, X @ theta, 0.2, lam, 2)[1],
            fastsd.optimal_xi(X, theta, 0.2, lam, 2)[1],
            rtol=1e-9,
        )


def test_optimal_xi_kernel(grid_search):
    X, f, _ = _data(4)
    K = pairwise_kernels(X, X, metric="rbf", gamma=0.5)
    dec = fastsd.decompose_kernel(K)
    xi, risk = fastsd.optimal_xi(dec, f, 0.05, 0.5, 2)
    assert np.all(np.isfinite(xi))
    assert abs(exact_risk(K, f, 0.05, 0.5, xi) - risk) <= XI_RTOL * risk
    _, best = grid_search(
        lambda c: fastsd.excess_risk(dec, f, 0.05, np.full(len(c), 0.5), c),
        2,
        box=max(10.0, 2 * np.max(np.abs(xi))),
    )
    assert risk <= best * (1 + 1e-9)
    assert fastsd.oracle_risk(dec, f, 0.05, 0.5) <= risk * (1 + 1e-12)


def test_validation_through_the_cross_kernel():
    X, _, y = _data(6)
    rng = np.random.default_rng(6)
    Xv = rng.normal(size=(15, 3))
    yv = np.sin(2 * Xv[:, 0]) + Xv[:, 1] ** 2
    dec = fastsd.decompose(X, y, kernel="rbf", kernel_params={"gamma": 0.4})
    K = pairwise_kernels(X, X, metric="rbf", gamma=0.4)
    Kv = pairwise_kernels(Xv, X, metric="rbf", gamma=0.4)
    xi, mse = fastsd.optimal_xi_validation(dec, None, Xv, yv, 0.2, 2)
    pred = Kv @ refit_dual(K, y, 0.2, xi)
    assert abs(np.mean((yv - pred) ** 2) - mse) <= 1e-8 * mse
    # a precomputed decomposition takes the cross-kernel matrix instead
    pre = fastsd.decompose_kernel(K, y)
    _, mse_pre = fastsd.optimal_xi_validation(pre, None, Kv, yv, 0.2, 2)
    assert_allclose(mse_pre, mse, rtol=1e-10)
    lams, xis, K_steps = np.array([0.05, 0.5]), np.array([0.3, 1.4]), 2
    sweep = fastsd.sweep_mse(dec, None, Xv, yv, lams, xis, K_steps)
    assert_allclose(
        sweep, fastsd.sweep_mse(dec, None, Xv, yv, lams, xis, K_steps, backend="numpy"), rtol=1e-12
    )
    pred = Kv @ refit_dual(K, y, lams[1], [xis[0]] * 2)
    assert abs(np.mean((yv - pred) ** 2) - sweep[1, 0, 2]) <= RTOL * sweep[1, 0, 2]


def test_bad_kernel_inputs_are_named():
    with pytest.raises(ValueError, match="K must be square"):
        fastsd.decompose_kernel(np.ones((3, 4)))
    with pytest.raises(ValueError, match="K must be symmetric"):
        fastsd.decompose_kernel(np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match="K must be positive semidefinite"):
        fastsd.decompose_kernel(-np.eye(3))
    dec = fastsd.decompose_kernel(np.eye(3))
    with pytest.raises(ValueError, match="cov applies to feature-space"):
        fastsd.excess_risk(dec, np.ones(3), 1.0, 1.0, [], cov=np.eye(3))
    with pytest.raises(ValueError, match="theta_star must have shape \\(3,\\)"):
        fastsd.excess_risk(dec, np.ones(4), 1.0, 1.0, [])


def test_random_fourier_features_converge_to_the_kernel():
    """Linear SD on D random Fourier features -> RBF kernel SD as D grows (error ~ 1/sqrt(D))."""
    from fastsd.problems import random_fourier_family

    fit_err, risk_err = [], []
    for D in (16, 1024):
        p = random_fourier_family(D, n=30, d_in=1, gamma=0.5, seed=3, batch=4)
        gram, f_star = p.meta["gram"], p.meta["f_star"]
        dec = fastsd.decompose_kernel(gram)
        y = f_star + 0.3 * np.random.default_rng(0).normal(size=f_star.shape)
        f_kernel = np.einsum("bnm,bm->bn", gram, fastsd.self_distill(dec, y, 0.1, [0.5, 1.2]))
        f_rff = np.einsum("bnd,bd->bn", p.X, fastsd.self_distill(p.X, y, 0.1, [0.5, 1.2]))
        fit_err.append(np.linalg.norm(f_rff - f_kernel) / np.linalg.norm(f_kernel))
        rk = fastsd.excess_risk(dec, f_star, 0.1, 0.1, [0.5, 1.2])
        rf = fastsd.excess_risk(p.X, p.theta_star, 0.1, 0.1, [0.5, 1.2])
        risk_err.append(np.sqrt(np.mean(((rf - rk) / rk) ** 2)))
    assert fit_err[1] < fit_err[0] / 3 and fit_err[1] < 0.01
    assert risk_err[1] < risk_err[0] / 2 and risk_err[1] < 0.025


def test_constrained_rounds_match_a_literal_loop():
    """Mobahi et al.'s rounds through fastsd (per-step lam, xi = 1) against solving each
    round directly; every round meets the bound; collapse no earlier than the bound."""
    from fastsd.experiments.kernel_sd import constrained_rounds, sine_problem

    p = sine_problem(n=32, gamma=300.0, n_grid=50)
    eps = 0.1 * p["noise_var"]
    res = constrained_rounds(p, eps)
    K = pairwise_kernels(p["x"], p["x"], metric="rbf", gamma=300.0)
    Kg = pairwise_kernels(p["grid"], p["x"], metric="rbf", gamma=300.0)
    targets = p["y"]
    for t, lam in enumerate(res["lams"], start=1):
        alpha = np.linalg.solve(K + lam * np.eye(32), targets)
        fit = K @ alpha
        assert abs(np.mean((fit - targets) ** 2) - eps) <= 1e-8 * eps
        assert abs(np.mean((Kg @ alpha - p["f_grid"]) ** 2) - res["test_mse"][t - 1]) <= (
            1e-7 * res["test_mse"][t - 1]
        )
        targets = fit
    assert np.sum(targets**2) <= 32 * eps  # the next round collapses
    assert res["collapse_round"] == res["lams"].size + 1 >= res["bound"]
    assert np.all(np.diff(res["lams"]) > 0) and np.all(np.diff(res["n_eff"]) < 0)


def test_batched_inputs_with_a_kernel():
    """decompose(X (B, n, d), kernel=...) and evaluation sets (B, n_eval, d) through
    the per-problem cross-kernels, numba sweep against the literal refit."""
    rng = np.random.default_rng(8)
    X, Xv = rng.normal(size=(2, 20, 2)), rng.normal(size=(2, 7, 2))
    y, yv = np.sin(X[..., 0]), np.sin(Xv[..., 0])
    dec = fastsd.decompose(X, y, kernel="laplacian", kernel_params={"gamma": 0.5})
    mse = fastsd.sweep_mse(dec, None, Xv, yv, [0.1], [0.4], 2, student_lams=[1.0])
    for b in range(2):
        K = pairwise_kernels(X[b], X[b], metric="laplacian", gamma=0.5)
        Kv = pairwise_kernels(Xv[b], X[b], metric="laplacian", gamma=0.5)
        pred = Kv @ refit_dual(K, y[b], 0.1, [0.4, 0.4], [1.0, 1.0])
        want = np.mean((yv[b] - pred) ** 2)
        assert abs(mse[b, 0, 0, 0, 2] - want) <= RTOL * want
