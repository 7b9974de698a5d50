"""Population (random-design) risk E_eps ||theta_k - theta*||^2_Sigma given X.

Checked against the literal refit (the estimator is linear in y: theta_k = L y,
so the risk is (L X theta* - theta*)^T Sigma (...) + sigma^2 tr(L^T Sigma L)),
against Monte Carlo over the noise, and against the fixed-design formulas at
Sigma = X^T X / n.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastsd
from fastsd.problems import random_design_family
from fastsd.reference import XI_RTOL, self_distill_refit


def _operator(X, lam, xi, steps=None):
    return self_distill_refit(X, np.eye(X.shape[0]), lam, xi, steps).T  # (d, n)


def _exact(X, theta, var, cov, lam, xi, steps=None):
    L = _operator(X, lam, xi, steps)
    bias = L @ (X @ theta) - theta
    return float(bias @ cov @ bias + var * np.trace(L.T @ cov @ L))


@pytest.fixture(scope="module")
def problems():
    # d = 6: n = 20 (tall) and n = 4 (d > n, a large part of theta* unseen)
    tall = random_design_family(np.geomspace(0.05, 2.0, 6), n=20, batch=2, seed=1)
    wide = random_design_family(np.geomspace(0.05, 2.0, 6), n=4, batch=2, seed=2)
    return {"tall": tall, "wide": wide}


@pytest.mark.parametrize("kind", ["tall", "wide"])
@pytest.mark.parametrize(
    "lam,xi,steps",
    [
        (0.5, [], None),
        (0.1, [0.7, 1.8], None),
        (3.0, [-0.4, 1.2, 2.0], [0.02, 30.0, 1.0]),
        (1e-6, [0.9], [1e4]),
    ],
)
def test_matches_literal_refit(problems, kind, lam, xi, steps):
    p = problems[kind]
    got = fastsd.excess_risk(p.X, p.theta_star, p.noise_var, lam, xi, student_lams=steps, cov=p.cov)
    for b in range(p.batch_size):
        want = _exact(p.X[b], p.theta_star[b], p.noise_var[b], p.cov[b], lam, xi, steps)
        assert abs(got[b] - want) <= 1e-10 * want


def test_monte_carlo(problems):
    p = problems["wide"]
    X, theta, cov, var = p.X[0], p.theta_star[0], p.cov[0], 0.5
    lam, xi = 0.3, [0.6, 1.4]
    L = _operator(X, lam, xi)
    rng = np.random.default_rng(0)
    eps = rng.normal(scale=np.sqrt(var), size=(4000, X.shape[0]))
    err = (X @ theta + eps) @ L.T - theta
    draws = np.einsum("md,de,me->m", err, cov, err)
    risk = fastsd.excess_risk(X, theta, var, lam, xi, cov=cov)
    assert abs(draws.mean() - risk) <= 5 * draws.std() / np.sqrt(draws.size)


@pytest.mark.filterwarnings("ignore::fastsd.exceptions.IllConditionedXiWarning")
def test_sample_covariance_gives_fixed_design(design):
    X, _ = design("tall", 4)
    rng = np.random.default_rng(4)
    theta = rng.normal(size=X.shape[1])
    S = X.T @ X / X.shape[0]
    lams = np.array([1e-3, 0.3, 30.0])
    assert_allclose(
        fastsd.excess_risk(X, theta, 0.2, lams, [0.5, 1.5], cov=S),
        fastsd.excess_risk(X, theta, 0.2, lams, [0.5, 1.5]),
        rtol=1e-10,
    )
    xa, ra = fastsd.optimal_xi(X, theta, 0.2, lams, 3, cov=S)
    xb, rb = fastsd.optimal_xi(X, theta, 0.2, lams, 3)
    assert_allclose(ra, rb, rtol=1e-9)
    ok = np.isfinite(xa) & np.isfinite(xb)
    assert ok.sum() >= 3
    assert_allclose(xa[ok], xb[ok], rtol=1e-6)


@pytest.mark.parametrize("kind", ["tall", "wide"])
@pytest.mark.parametrize("steps", [None, [4.0, 0.1]])
def test_optimal_xi_is_optimal(problems, grid_search, kind, steps):
    p = problems[kind]
    X, theta, cov, var, lam = p.X[1], p.theta_star[1], p.cov[1], p.noise_var[1], 0.2
    xi, risk = fastsd.optimal_xi(X, theta, var, lam, 2, student_lams=steps, cov=cov)
    if np.all(np.isfinite(xi)):
        assert abs(_exact(X, theta, var, cov, lam, xi, steps) - risk) <= XI_RTOL * risk
    dec = fastsd.decompose(X)

    def f(nodes):
        return fastsd.excess_risk(
            dec, theta, var, np.full(len(nodes), lam), nodes, student_lams=steps, cov=cov
        )

    box = max(10.0, 2 * float(np.nanmax(np.abs(xi)))) if np.all(np.isfinite(xi)) else 1e3
    _, best = grid_search(f, 2, box=box)
    assert risk <= best * (1 + 1e-9)
    # k = 0 is ridge; more steps never hurt with one penalty
    _, r0 = fastsd.optimal_xi(X, theta, var, lam, 0, cov=cov)
    _, r1 = fastsd.optimal_xi(X, theta, var, lam, 1, cov=cov)
    _, r2 = fastsd.optimal_xi(X, theta, var, lam, 2, cov=cov)
    assert r2 <= r1 * (1 + 1e-12) <= r0 * (1 + 1e-12)
    assert abs(r0 - fastsd.excess_risk(X, theta, var, lam, [], cov=cov)) <= 1e-12 * r0


def test_sweeps_match_core(problems):
    p = problems["wide"]
    lams, xis, K = np.array([0.01, 1.0]), np.array([-0.3, 0.8, 1.6]), 3
    risk = fastsd.sweep_risk(
        p.X, p.theta_star, p.noise_var, lams, xis, K, cov=p.cov, backend="numpy"
    )
    assert risk.shape == (2, 2, 3, K + 1)
    assert_allclose(
        fastsd.sweep_risk(p.X, p.theta_star, p.noise_var, lams, xis, K, cov=p.cov), risk, rtol=1e-12
    )  # the Numba kernel
    for l_idx, g, k in [(0, 0, 0), (1, 2, 3), (0, 1, 2)]:
        assert_allclose(
            risk[:, l_idx, g, k],
            fastsd.excess_risk(
                p.X, p.theta_star, p.noise_var, lams[l_idx], np.full(k, xis[g]), cov=p.cov
            ),
            rtol=1e-12,
        )
    ts = fastsd.sweep_risk(
        p.X, p.theta_star, p.noise_var, lams, xis, K, cov=p.cov, student_lams=[5.0], backend="numpy"
    )
    assert_allclose(
        ts[:, 1, 0, 2, 2],
        fastsd.excess_risk(
            p.X,
            p.theta_star,
            p.noise_var,
            lams[1],
            [xis[2]] * 2,
            student_lams=[5.0, 5.0],
            cov=p.cov,
        ),
        rtol=1e-12,
    )
    opt, xi = fastsd.sweep_optimal(
        p.X, p.theta_star, p.noise_var, lams, K, cov=p.cov, backend="numpy"
    )
    _, want = fastsd.optimal_xi(p.X, p.theta_star, p.noise_var, lams, 2, cov=p.cov)
    assert_allclose(opt[..., 2], want, rtol=1e-12)


def test_bad_cov_is_named():
    X, theta = np.random.default_rng(0).normal(size=(10, 3)), np.ones(3)
    with pytest.raises(ValueError, match="cov must have shape \\(3, 3\\)"):
        fastsd.excess_risk(X, theta, 1.0, 1.0, [], cov=np.eye(4))
    with pytest.raises(ValueError, match="cov must be symmetric"):
        fastsd.excess_risk(X, theta, 1.0, 1.0, [], cov=np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match="cov must be positive semidefinite"):
        fastsd.optimal_xi(X, theta, 1.0, 1.0, 1, cov=-np.eye(3))
    with pytest.raises(ValueError, match="cov .*backend='numpy'"):
        fastsd.sweep_optimal(X[None], theta[None], 1.0, [1.0], 1, cov=np.eye(3))
