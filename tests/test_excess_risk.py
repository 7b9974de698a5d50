"""fastsd.excess_risk: exact against the estimator's mean/covariance, and Monte Carlo."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import fastsd
from fastsd.reference import self_distill_refit

KINDS = ("tall", "wide", "dup", "zero", "wide_dup")
LAMS = [0.0, 1e-3, 0.1, 1.0, 30.0, 1e3]
SCHEDULES = [[], [0.5], [-0.8], [1.6, -0.4], [0.3, 2.2, -1.0], [1.1, 0.7, -0.5, 1.9, 0.2, -1.3]]
# Both sides are sums of O(d) positive terms computed stably; the literal side
# inherits the refit's rounding, eps * cond(X^T X + lam I) <= ~1e-11 here.
RTOL = 1e-10


def assert_risk_close(got, want, X, theta_star, msg=""):
    """|got - want| <= RTOL want + atol, with atol for the bias cancellation.

    The literal side forms the bias vector L X theta* - theta*, with an absolute
    error delta ~ eps cond(X^T X + lam I) ||theta*||_S <= 1e-11 ||theta*||_S
    (S = X^T X / n). It enters the risk as 2 <bias, delta>_S + ||delta||_S^2, so
    when the bias nearly vanishes (sigma^2 = 0, small lam) the relative error is
    unbounded but the absolute one is <= 1e-11 sqrt(risk scale) + 1e-22 scale.
    """
    scale = float(np.sum((X @ theta_star) ** 2) / X.shape[0])  # ||theta*||_S^2
    atol = 1e-11 * np.sqrt(scale * abs(want)) + 1e-22 * scale
    assert_allclose(got, want, rtol=RTOL, atol=atol, err_msg=msg)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("noise_var", [0.0, 0.7])
def test_matches_mean_covariance_formula(design, refit_op, lin_risk, kind, lam, noise_var):
    """R = ||(L X - I) theta*||^2_S + sigma^2 tr(S L L^T), L the refit operator."""
    X, _ = design(kind, 1)
    theta_star = np.random.default_rng(2).normal(size=X.shape[1])
    for xi in SCHEDULES:
        want = lin_risk(X, refit_op(X, lam, xi), theta_star, noise_var)
        got = fastsd.excess_risk(X, theta_star, noise_var, lam, xi)
        assert np.ndim(got) == 0
        assert_risk_close(got, want, X, theta_star, str((kind, lam, xi)))


MC_CASES = [
    # (kind, lam, xi, noise_var)
    ("tall", 0.5, [0.5, 1.5], 1.0),
    ("tall", 0.0, [], 2.0),
    ("wide", 1e-2, [2.0, -1.0], 0.5),
    ("dup", 1.0, [-0.5], 1.0),
    ("zero", 3.0, [1.2, 0.4, -0.7], 1.5),
]


@pytest.mark.parametrize("kind,lam,xi,noise_var", MC_CASES)
def test_matches_monte_carlo(design, kind, lam, xi, noise_var):
    """Average loss of the literal refit over noise draws, within 4 standard errors."""
    X, _ = design(kind, 3, n=20 if kind != "wide" else None)
    rng = np.random.default_rng(4)
    n, d = X.shape
    theta_star = rng.normal(size=d)
    draws = 4000
    eps = rng.normal(scale=np.sqrt(noise_var), size=(draws, n))
    theta = self_distill_refit(X, X @ theta_star + eps, lam, xi)  # (draws, d)
    err = (theta - theta_star) @ X.T  # X (theta - theta*) per draw
    loss = np.sum(err * err, axis=1) / n
    mean, se = loss.mean(), loss.std(ddof=1) / np.sqrt(draws)
    risk = fastsd.excess_risk(X, theta_star, noise_var, lam, xi)
    assert abs(mean - risk) <= 4 * se, (mean, risk, se)


@pytest.mark.parametrize("kind", KINDS)
def test_batched_and_lam_array_shapes(design, kind):
    B = 3
    Xs = np.stack([design(kind, 10 + b)[0] for b in range(B)])
    rng = np.random.default_rng(5)
    thetas = rng.normal(size=(B, Xs.shape[2]))
    noise = np.array([0.1, 1.0, 4.0])
    lams = np.array([0.0, 1e-8, 1e-2, 1.0, 1e8])
    xi = [0.9, -0.2, 1.4]
    out = fastsd.excess_risk(Xs, thetas, noise, lams, xi)
    assert out.shape == (B, lams.size)
    assert fastsd.excess_risk(Xs, thetas, noise, 1.0, xi).shape == (B,)
    assert fastsd.excess_risk(Xs[0], thetas[0], 1.0, lams, xi).shape == (lams.size,)
    for b in range(B):
        for l, lam in enumerate(lams):
            assert_allclose(
                out[b, l], fastsd.excess_risk(Xs[b], thetas[b], noise[b], lam, xi), rtol=1e-13
            )
    # scalar noise_var applies to every problem
    assert_allclose(fastsd.excess_risk(Xs, thetas, 1.0, lams, xi)[1], out[1], rtol=1e-13)


def test_xi_broadcast_per_batch_and_lam(design):
    B, L, k = 2, 3, 4
    Xs = np.stack([design("wide_dup", b)[0] for b in range(B)])
    rng = np.random.default_rng(6)
    thetas = rng.normal(size=(B, Xs.shape[2]))
    lams = np.array([1e-3, 1.0, 1e3])
    xi = rng.uniform(-2.0, 3.0, size=(B, L, k))
    out = fastsd.excess_risk(Xs, thetas, 0.5, lams, xi)
    assert out.shape == (B, L)
    for b in range(B):
        for l in range(L):
            assert_allclose(
                out[b, l], fastsd.excess_risk(Xs[b], thetas[b], 0.5, lams[l], xi[b, l]), rtol=1e-13
            )


@pytest.mark.parametrize("kind", ["wide", "dup", "zero", "wide_dup"])
def test_null_space_part_of_theta_star_is_invisible(design, nullspace, kind):
    """The loss is measured in X^T X / n, which cannot see ker X."""
    X, rank = design(kind, 7)
    rng = np.random.default_rng(7)
    theta_star = rng.normal(size=X.shape[1])
    N = nullspace(X, rank)
    shifted = theta_star + N @ rng.normal(scale=10.0, size=N.shape[1])
    lams = np.array([0.0, 0.1, 10.0])
    assert_allclose(
        fastsd.excess_risk(X, shifted, 0.3, lams, [1.5, -0.5]),
        fastsd.excess_risk(X, theta_star, 0.3, lams, [1.5, -0.5]),
        rtol=1e-10,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_oracle_risk_lower_bounds_every_schedule(design, kind):
    X, _ = design(kind, 8)
    rng = np.random.default_rng(8)
    theta_star = rng.normal(size=X.shape[1])
    lams = np.logspace(-8, 8, 9)
    oracle = fastsd.oracle_risk(X, theta_star, 0.4, lams)
    xis = rng.uniform(-3.0, 3.0, size=(30, 4))
    ridge = fastsd.excess_risk(X, theta_star, 0.4, lams, [])
    assert np.all(oracle <= ridge * (1 + 1e-12))
    for xi in xis:
        r = fastsd.excess_risk(X, theta_star, 0.4, lams, xi)
        assert np.all(oracle <= r * (1 + 1e-12))
    assert np.all(oracle >= 0)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 8),
    d=st.integers(1, 8),
    log_lam=st.floats(-3.0, 3.0),
    noise_var=st.floats(0.0, 5.0),
    xi=st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=0, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_nonnegative_finite_exact(refit_op, lin_risk, n, d, log_lam, noise_var, xi, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    theta_star = rng.normal(size=d)
    lam = 10.0**log_lam
    got = fastsd.excess_risk(X, theta_star, noise_var, lam, xi)
    assert np.isfinite(got) and got >= 0
    want = lin_risk(X, refit_op(X, lam, xi), theta_star, noise_var)
    assert_risk_close(got, want, X, theta_star)
