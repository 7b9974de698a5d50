"""fastsd.self_distill (spectral) against the literal refit definition."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import fastsd
from fastsd.reference import self_distill_refit

# problem kinds of the ``design`` fixture (tests/conftest.py)
KINDS = ("tall", "wide", "dup", "zero", "wide_dup")

# Both routes are backward stable; their difference is bounded by
# eps * cond(X^T X + lam I) ~ 1e-16 * s_max^2 / lam <= 1e-16 * 40 / 1e-3 ~ 4e-12
# for these small Gaussian designs, so 1e-10 (the requirement) has room.
RTOL = 1e-10

LAMS = [1e-3, 1e-1, 1.0, 37.0, 1e3]
SCHEDULES = [
    [],
    [0.5],
    [1.0],
    [0.0, 0.0],
    [-0.7, 1.8],
    [2.5, -1.5, 0.3],
    [0.2, 0.9, 1.4, -0.6],
    [1.3, -0.4, 0.8, 2.1, -1.1, 0.6],
]
SEEDS = [0, 1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("seed", SEEDS)
def test_spectral_matches_refit(design, relerr, kind, lam, seed):
    X, _ = design(kind, seed)
    y = np.random.default_rng(seed + 100).normal(size=X.shape[0])
    for xi in SCHEDULES:
        got = fastsd.self_distill(X, y, lam, xi)
        want = self_distill_refit(X, y, lam, xi)
        assert got.shape == (X.shape[1],)
        assert relerr(got, want) <= RTOL, (kind, lam, xi)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("xi", SCHEDULES)
def test_lam_zero_full_rank_matches_refit(design, relerr, seed, xi):
    X, _ = design("tall", seed)
    y = np.random.default_rng(seed).normal(size=X.shape[0])
    got = fastsd.self_distill(X, y, 0.0, xi)
    assert relerr(got, self_distill_refit(X, y, 0.0, xi)) <= RTOL
    # lam = 0: r = 1 on every live direction, so phi_k = 1 and every step
    # reproduces the least-squares fit.
    assert relerr(got, np.linalg.lstsq(X, y, rcond=None)[0]) <= RTOL


@pytest.mark.parametrize("kind", ["wide", "dup", "zero", "wide_dup"])
@pytest.mark.parametrize("xi", [[], [0.4], [3.0, -2.0, 0.5]])
def test_lam_zero_rank_deficient_is_min_norm(design, nullspace, relerr, kind, xi):
    X, rank = design(kind, 7)
    y = np.random.default_rng(8).normal(size=X.shape[0])
    got = fastsd.self_distill(X, y, 0.0, xi)
    assert np.all(np.isfinite(got))
    pinv = np.linalg.pinv(X) @ y
    assert relerr(got, pinv) <= RTOL
    assert relerr(got, self_distill_refit(X, y, 0.0, xi)) <= RTOL
    N = nullspace(X, rank)
    assert N.shape[1] > 0
    # orthogonal to the null space (relative to ||theta||)
    assert np.linalg.norm(N.T @ got) <= 1e-12 * np.linalg.norm(got)


@pytest.mark.parametrize("kind", ["wide", "dup", "zero", "wide_dup"])
@pytest.mark.parametrize("lam", [1e-8, 1e-3, 1.0, 1e8])
def test_result_orthogonal_to_null_space(design, nullspace, kind, lam):
    """Every estimator lies in the row space of X, whatever lam and xi."""
    X, rank = design(kind, 3)
    y = np.random.default_rng(4).normal(size=X.shape[0])
    theta = fastsd.self_distill(X, y, lam, [1.5, -0.5, 2.0])
    N = nullspace(X, rank)
    assert np.linalg.norm(N.T @ theta) <= 1e-12 * np.linalg.norm(theta)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lam", [1e-3, 1.0, 1e3])
def test_batched_matches_refit_and_single(design, relerr, kind, lam):
    B = 3
    Xs = np.stack([design(kind, 20 + b)[0] for b in range(B)])
    ys = np.random.default_rng(5).normal(size=Xs.shape[:2])
    xi = [0.6, -1.2, 2.0]
    got = fastsd.self_distill(Xs, ys, lam, xi)
    assert got.shape == (B, Xs.shape[2])
    want = self_distill_refit(Xs, ys, lam, xi)
    for b in range(B):
        assert relerr(got[b], want[b]) <= RTOL
        assert relerr(got[b], fastsd.self_distill(Xs[b], ys[b], lam, xi)) <= 1e-13


@pytest.mark.parametrize("kind", ["tall", "wide", "dup"])
def test_ridge_k0_closed_form(design, relerr, kind):
    X, _ = design(kind, 9)
    y = np.random.default_rng(9).normal(size=X.shape[0])
    lam = 0.3
    want = np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ y)
    assert relerr(fastsd.self_distill(X, y, lam, []), want) <= RTOL
    # xi = 0 steps are resets to the teacher
    assert relerr(fastsd.self_distill(X, y, lam, [0.0, 0.0, 0.0]), want) <= RTOL
    # one xi = 1 step: theta_1 = (X^T X + lam)^{-1} X^T X theta_0
    A = X.T @ X + lam * np.eye(X.shape[1])
    assert relerr(fastsd.self_distill(X, y, lam, [1.0]), np.linalg.solve(A, X.T @ X @ want)) <= RTOL


LAM_GRID = np.array([0.0, 1e-8, 1e-3, 0.5, 10.0, 1e3, 1e8])


@pytest.mark.parametrize("batched", [False, True])
def test_lam_array_shapes_and_slices(design, batched):
    if batched:
        X = np.stack([design("tall", s)[0] for s in range(3)])
    else:
        X, _ = design("tall", 0)
    y = np.random.default_rng(1).normal(size=X.shape[:-1])
    xi = [0.7, 1.9]
    out = fastsd.self_distill(X, y, LAM_GRID, xi)
    lead = X.shape[:-2]
    assert out.shape == lead + (LAM_GRID.size, X.shape[-1])
    for l, lam in enumerate(LAM_GRID):
        single = fastsd.self_distill(X, y, lam, xi)
        assert single.shape == lead + (X.shape[-1],)
        assert_allclose(out[..., l, :], single, rtol=1e-14, atol=0)
    # a list of lams behaves like the array; a length-1 array keeps its axis
    assert_allclose(fastsd.self_distill(X, y, list(LAM_GRID), xi), out, rtol=1e-14)
    assert fastsd.self_distill(X, y, [0.5], xi).shape == lead + (1, X.shape[-1])


def test_xi_broadcast_per_batch_and_lam(design):
    B, L, k = 3, 4, 3
    X = np.stack([design("dup", s)[0] for s in range(B)])
    y = np.random.default_rng(2).normal(size=X.shape[:-1])
    lams = np.array([1e-3, 0.2, 5.0, 1e4])
    xi = np.random.default_rng(3).uniform(-2.0, 3.0, size=(B, L, k))
    out = fastsd.self_distill(X, y, lams, xi)
    assert out.shape == (B, L, X.shape[-1])
    for b in range(B):
        for l in range(L):
            want = fastsd.self_distill(X[b], y[b], lams[l], xi[b, l])
            assert_allclose(out[b, l], want, rtol=1e-13)
    # one schedule per problem, shared over lambda: shape (B, 1, k)
    per_b = fastsd.self_distill(X, y, lams, xi[:, :1])
    for b in range(B):
        assert_allclose(per_b[b], fastsd.self_distill(X[b], y[b], lams, xi[b, 0]), rtol=1e-13)
    # one schedule per lambda, shared over problems: shape (L, k)
    per_l = fastsd.self_distill(X, y, lams, xi[0])
    for l in range(L):
        assert_allclose(per_l[:, l], fastsd.self_distill(X, y, lams[l], xi[0, l]), rtol=1e-13)
    # scalar lam, batched: one schedule per problem (B, k)
    per_b_scalar = fastsd.self_distill(X, y, 0.2, xi[:, 0])
    for b in range(B):
        assert_allclose(per_b_scalar[b], fastsd.self_distill(X[b], y[b], 0.2, xi[b, 0]), rtol=1e-13)


def test_xi_broadcast_unbatched_lam_array(design):
    X, _ = design("wide", 4)
    y = np.random.default_rng(4).normal(size=X.shape[0])
    lams = np.array([0.01, 1.0, 100.0])
    xi = np.array([[0.5, 0.5], [2.0, -1.0], [-3.0, 4.0]])
    out = fastsd.self_distill(X, y, lams, xi)
    assert out.shape == (3, X.shape[1])
    for l in range(3):
        assert_allclose(out[l], self_distill_refit(X, y, lams[l], xi[l]), rtol=RTOL)


@pytest.mark.parametrize("kind", KINDS)
def test_decomposition_input_matches_X(design, kind):
    X, _ = design(kind, 11)
    y = np.random.default_rng(11).normal(size=X.shape[0])
    lams = np.array([0.0, 1e-2, 3.0])
    xi = [1.7, -0.3, 0.9]
    want = fastsd.self_distill(X, y, lams, xi)
    dec = fastsd.decompose(X)
    dec_y = fastsd.decompose(X, y)
    assert_allclose(fastsd.self_distill(dec, y, lams, xi), want, rtol=1e-13, atol=0)
    assert_allclose(fastsd.self_distill(dec_y, None, lams, xi), want, rtol=1e-13, atol=0)
    # a stored y is overridden by an explicit one
    y2 = y[::-1].copy()
    assert_allclose(
        fastsd.self_distill(dec_y, y2, lams, xi), fastsd.self_distill(X, y2, lams, xi), rtol=1e-13
    )


@pytest.mark.parametrize("k", [6, 12])
def test_large_k_matches_refit(design, relerr, k):
    X, _ = design("tall", 12)
    y = np.random.default_rng(12).normal(size=X.shape[0])
    xi = np.random.default_rng(13).uniform(-1.0, 2.0, size=k)
    for lam in [1e-2, 1.0, 1e2]:
        assert relerr(fastsd.self_distill(X, y, lam, xi), self_distill_refit(X, y, lam, xi)) <= RTOL


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 8),
    d=st.integers(1, 8),
    log_lam=st.floats(-3.0, 3.0),
    xi=st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=0, max_size=6),
    seed=st.integers(0, 2**32 - 1),
    batch=st.sampled_from([None, 2]),
)
def test_property_matches_refit(relerr, n, d, log_lam, xi, seed, batch):
    rng = np.random.default_rng(seed)
    lead = () if batch is None else (batch,)
    X = rng.normal(size=lead + (n, d))
    y = rng.normal(size=lead + (n,))
    lam = 10.0**log_lam
    got = fastsd.self_distill(X, y, lam, xi)
    assert got.shape == lead + (d,)
    assert got.dtype == np.float64
    assert np.all(np.isfinite(got))
    want = self_distill_refit(X, y, lam, xi)
    if np.linalg.norm(want) == 0:
        assert np.linalg.norm(got) == 0
    else:
        assert relerr(got, want) <= RTOL
