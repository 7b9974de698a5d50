"""Shared problem generators and independent reference computations.

The helpers are exposed as session-scoped fixtures (hypothesis tests may use
them without the function-scoped-fixture health check). Everything is
deterministic: each generator takes an explicit seed.

Independent references used across the suite:

* ``refit_operator`` -- the matrix L (d, n) of the literal estimator
  theta_k = L y, obtained by running :func:`fastsd.reference.self_distill_refit`
  on the n unit targets e_1..e_n (the estimator is linear in y);
* ``linear_risk`` -- the exact fixed-design excess risk of a linear estimator
  L y for y = X theta* + eps, Cov eps = sigma^2 I, from its mean and covariance:
  ||(L X - I) theta*||^2_S + sigma^2 tr(S L L^T) with S = X^T X / n,
  evaluated as (||X L X theta* - X theta*||^2 + sigma^2 ||X L||_F^2) / n.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastsd.reference import self_distill_refit

# Problem kinds used by the parametrized tests:
#   tall   n > d, full column rank
#   wide   d > n (rank n)
#   dup    n > d with duplicated columns (rank deficient)
#   zero   n > d with zero columns (rank deficient)
#   wide_dup  d > n with duplicated and zero columns
KINDS = ("tall", "wide", "dup", "zero", "wide_dup")


def make_design(kind, seed, n=None, d=None):
    """Random design matrix of the given kind; returns (X, true_rank)."""
    rng = np.random.default_rng(seed)
    if kind == "tall":
        n, d = n or 30, d or 6
        return rng.normal(size=(n, d)), d
    if kind == "wide":
        n, d = n or 7, d or 20
        return rng.normal(size=(n, d)), n
    if kind == "dup":
        n = n or 25
        base = rng.normal(size=(n, 4))
        X = np.column_stack([base, base[:, 1], base[:, 3], -2.0 * base[:, 0]])
        return X, 4
    if kind == "zero":
        n = n or 25
        base = rng.normal(size=(n, 4))
        X = np.column_stack([base[:, :2], np.zeros(n), base[:, 2:], np.zeros(n)])
        return X, 4
    if kind == "wide_dup":
        n = n or 6
        base = rng.normal(size=(n, 9))
        X = np.column_stack([base, base[:, :3], np.zeros((n, 2))])
        return X, n
    raise ValueError(kind)


def design_with_spectrum(s, n, seed):
    """X = U diag(s) V^T with Haar-random orthonormal U (n, d) and V (d, d)."""
    s = np.asarray(s, dtype=float)
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.normal(size=(n, s.size)))
    V, _ = np.linalg.qr(rng.normal(size=(s.size, s.size)))
    return (U * s) @ V.T


def null_space(X, rank):
    """Orthonormal basis (d, d - rank) of the null space of X."""
    _, _, Vt = np.linalg.svd(X)
    return Vt[rank:].T


def refit_operator(X, lam, xi):
    """L of shape (d, n) with literal-refit theta_k = L y (unbatched X)."""
    n = X.shape[0]
    return self_distill_refit(X, np.eye(n), lam, xi).T


def linear_risk(X, L, theta_star, noise_var):
    """Exact E||L y - theta*||^2_{X^T X/n} for y = X theta* + eps, Cov eps = sigma^2 I."""
    n = X.shape[0]
    # ||v||_S^2 = ||X v||^2 / n: forming S = X^T X / n first would add an error
    # eps ||S|| ||v||^2, large where v has a big component in ker X.
    fit_err = X @ (L @ (X @ theta_star)) - X @ theta_star
    XL = X @ L
    return float((fit_err @ fit_err + noise_var * np.sum(XL * XL)) / n)


def refit_risk(X, theta_star, noise_var, lam, xi):
    """Exact excess risk of the literal-refit estimator with schedule xi."""
    return linear_risk(X, refit_operator(X, lam, xi), theta_star, noise_var)


def rel_err(a, b):
    """Norm-wise relative error ||a - b|| / ||b||."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _zoom_rows(g, lo, hi, points, levels):
    """Independent 1-D grid searches, one per row, each refined around its best node.

    g maps candidates of shape (R, points) to values of the same shape. For a
    convex function the minimizer lies within one spacing of the best node, so
    the box shrinks to +-2 spacings around it at each level.
    """
    rows = np.arange(lo.size)
    best_x, best_v = lo.copy(), np.full(lo.size, np.inf)
    for _ in range(levels):
        cand = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, points)
        vals = g(cand)
        j = np.argmin(vals, axis=1)
        better = vals[rows, j] < best_v
        best_x = np.where(better, cand[rows, j], best_x)
        best_v = np.where(better, vals[rows, j], best_v)
        step = (hi - lo) / (points - 1)
        lo, hi = best_x - 2 * step, best_x + 2 * step
    return best_x, best_v


def grid_search_xi(f, k, box=10.0, points=41, levels=12):
    """Grid search for the best schedule xi in [-box, box]^k, k = 1 or 2.

    f maps nodes of shape (m, k) to m values (an excess risk or a validation
    MSE). It never sees the answer it is compared with. The risk is convex in
    xi_1 when k = 1; when k = 2 it is convex in xi_1 for fixed xi_2 (xibar is
    affine in xi_1) and its minimum over xi_1 is convex in xi_2 (the lines
    xibar_1 + xibar_2 = xi_2 are parallel), so the 2-D grid is searched as a
    profile: a refined grid over xi_2 whose every node holds a refined grid
    over xi_1. Refinement shrinks the box 10x per level, so 12 levels resolve
    xi to ~1e-12 box, more than the risk needs (it is quadratic at the minimum). Returns (xi, value).
    """
    if k == 1:
        x, v = _zoom_rows(
            lambda c: f(c.reshape(-1, 1)).reshape(c.shape),
            np.array([-box]),
            np.array([box]),
            points,
            levels,
        )
        return x, float(v[0])
    if k != 2:
        raise ValueError("grid search for k = 1 or 2 only")

    def inner(xi2):  # best xi_1 and value for each xi_2 in the flat array xi2
        def g(c1):
            nodes = np.stack([c1, np.broadcast_to(xi2[:, None], c1.shape)], axis=-1)
            return f(nodes.reshape(-1, 2)).reshape(c1.shape)

        return _zoom_rows(g, np.full(xi2.size, -box), np.full(xi2.size, box), points, levels)

    xi2, v = _zoom_rows(
        lambda c2: inner(c2.ravel())[1].reshape(c2.shape),
        np.array([-box]),
        np.array([box]),
        points,
        levels,
    )
    xi1, v1 = inner(xi2)
    return np.array([xi1[0], xi2[0]]), float(v1[0])


@pytest.fixture(scope="session")
def design():
    return make_design


@pytest.fixture(scope="session")
def spectrum_design():
    return design_with_spectrum


@pytest.fixture(scope="session")
def nullspace():
    return null_space


@pytest.fixture(scope="session")
def refit_op():
    return refit_operator


@pytest.fixture(scope="session")
def lin_risk():
    return linear_risk


@pytest.fixture(scope="session")
def exact_refit_risk():
    return refit_risk


@pytest.fixture(scope="session")
def relerr():
    return rel_err


@pytest.fixture(scope="session")
def grid_search():
    return grid_search_xi
