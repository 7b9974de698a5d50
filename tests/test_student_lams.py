"""Per-step penalties (teacher lam_0, students lam_1..lam_k) against the literal refit.

The literal refit solves (X^T X + lam_i I) theta_i = X^T (xi_i X theta_{i-1} + (1 - xi_i) y)
with a different penalty per step; the spectral form must agree to 1e-10.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastsd
from fastsd.reference import XI_RTOL, self_distill_refit

# These tests compare sweeps across backends, paths, block plans and executors on random
# problems, where some optimal xi are unrecoverable by construction: the warning is a side
# effect here (it is tested in test_optimal.py, test_xi_acceptance.py and test_sweep_store.py).
pytestmark = pytest.mark.filterwarnings("ignore::fastsd.exceptions.IllConditionedXiWarning")

KINDS = ("tall", "wide", "dup", "zero", "wide_dup")
RTOL = 1e-10

# (teacher lam_0, students lam_1..lam_k, xi): penalties from 1e-8 to 1e8 (and 0)
CASES = [
    (1.0, [0.1], [0.6]),
    (1e-3, [1e3, 2.0], [-0.7, 1.8]),
    (37.0, [1e-2, 5.0, 0.5], [2.5, -1.5, 0.3]),
    (0.0, [1.0, 0.0], [0.4, 1.2]),
    (1e-8, [1e8, 1e-8, 3.0, 1.0], [0.2, 0.9, 1.4, -0.6]),
    (0.3, [0.3] * 6 + [2.0] * 2, [1.3, -0.4, 0.8, 2.1, -1.1, 0.6, 0.5, 1.5]),
]


def _relerr(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def _refit_risk(X, theta, var, lam, xi, steps):
    """Exact excess risk of the literal refit (it is linear in y)."""
    n = X.shape[0]
    L = self_distill_refit(X, np.eye(n), lam, xi, steps).T
    fit = X @ (L @ (X @ theta)) - X @ theta
    XL = X @ L
    return float((fit @ fit + var * np.sum(XL * XL)) / n)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_self_distill_matches_refit(design, kind, case):
    lam, steps, xi = CASES[case]
    X, _ = design(kind, case)
    y = np.random.default_rng(case).normal(size=X.shape[0])
    got = fastsd.self_distill(X, y, lam, xi, student_lams=steps)
    want = self_distill_refit(X, y, lam, xi, steps)
    assert _relerr(got, want) < RTOL


def test_equal_penalties_give_the_one_lambda_path(design):
    X, _ = design("tall", 3)
    rng = np.random.default_rng(3)
    y, theta = rng.normal(size=X.shape[0]), rng.normal(size=X.shape[1])
    lams, xi = np.array([1e-2, 1.0, 1e2]), [0.5, 1.7, -0.4]
    for lam in lams:
        same = [lam] * 3
        assert_allclose(
            fastsd.self_distill(X, y, lam, xi, student_lams=same),
            fastsd.self_distill(X, y, lam, xi),
            rtol=1e-12,
        )
        assert_allclose(
            fastsd.excess_risk(X, theta, 0.3, lam, xi, student_lams=same),
            fastsd.excess_risk(X, theta, 0.3, lam, xi),
            rtol=1e-12,
        )
        a_xi, a_risk = fastsd.optimal_xi(X, theta, 0.3, lam, 3, student_lams=same)
        b_xi, b_risk = fastsd.optimal_xi(X, theta, 0.3, lam, 3)
        assert_allclose(a_risk, b_risk, rtol=1e-10)
        assert_allclose(a_xi, b_xi, rtol=1e-7)


def test_batched_and_lambda_grid(design):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3, 20, 5))
    y = rng.normal(size=(3, 20))
    lams, steps, xi = np.array([0.1, 10.0]), [3.0, 0.02], [0.8, 1.6]
    got = fastsd.self_distill(X, y, lams, xi, student_lams=steps)
    assert got.shape == (3, 2, 5)
    for b in range(3):
        for l_idx, lam in enumerate(lams):
            want = self_distill_refit(X[b], y[b], lam, xi, steps)
            assert _relerr(got[b, l_idx], want) < RTOL


@pytest.mark.parametrize("kind", ("tall", "wide", "dup"))
@pytest.mark.parametrize("case", (1, 2, 4))
def test_excess_risk_matches_refit(design, kind, case):
    lam, steps, xi = CASES[case]
    X, _ = design(kind, case)
    theta = np.random.default_rng(case).normal(size=X.shape[1])
    got = fastsd.excess_risk(X, theta, 0.4, lam, xi, student_lams=steps)
    assert abs(got - _refit_risk(X, theta, 0.4, lam, xi, steps)) <= RTOL * got


@pytest.mark.parametrize("kind", ("tall", "wide", "zero"))
@pytest.mark.parametrize("lam,steps", [(0.5, [5.0, 5.0]), (20.0, [0.05, 0.3]), (1e-4, [1.0, 1e3])])
def test_optimal_xi_is_optimal(design, grid_search, kind, lam, steps):
    X, _ = design(kind, 7)
    theta = np.random.default_rng(7).normal(size=X.shape[1])
    xi, risk = fastsd.optimal_xi(X, theta, 0.5, lam, 2, student_lams=steps)
    # the literal refit with the reported schedule attains the reported risk
    # (NaN: reported as too ill-conditioned to reproduce, the risk is still exact)
    if np.all(np.isfinite(xi)):
        assert abs(_refit_risk(X, theta, 0.5, lam, xi, steps) - risk) <= XI_RTOL * risk
    # and nothing on a fine grid does better
    dec = fastsd.decompose(X)

    def f(nodes):
        return fastsd.excess_risk(
            dec, theta, 0.5, np.full(len(nodes), lam), nodes, student_lams=steps
        )

    _, best = grid_search(f, 2, box=max(10.0, 2 * np.max(np.abs(xi))))
    assert risk <= best * (1 + 1e-9)
    # one step: same check against the k = 1 grid
    xi1, risk1 = fastsd.optimal_xi(X, theta, 0.5, lam, 1, student_lams=steps[:1])
    _, best1 = grid_search(
        lambda c: fastsd.excess_risk(
            dec, theta, 0.5, np.full(len(c), lam), c, student_lams=steps[:1]
        ),
        1,
        box=max(10.0, 2 * abs(float(xi1[0]))),
    )
    assert risk1 <= best1 * (1 + 1e-9) and best1 <= risk1 * (1 + 1e-7)


def test_optimal_xi_large_k_stays_exact():
    """Many steps with alternating penalties: the products basis keeps the
    risk exact (replayed by the literal refit when xi is reported)."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(60, 8)) * np.linspace(0.3, 3.0, 8)
    theta = rng.normal(size=8)
    steps = np.tile([0.2, 2.0], 5)
    risks = []
    for k in range(0, 11):
        xi, risk = fastsd.optimal_xi(X, theta, 1.0, 1.0, k, student_lams=steps[:k])
        risks.append(risk)
        if k and np.all(np.isfinite(xi)):
            assert abs(_refit_risk(X, theta, 1.0, 1.0, xi, steps[:k]) - risk) <= XI_RTOL * risk
    # more steps never hurt once enough are available to reproduce the oracle fit
    assert min(risks[1:]) <= risks[0]


@pytest.mark.parametrize("steps", [[2.0, 2.0], [0.05, 4.0]])
def test_optimal_xi_validation_matches_refit(steps):
    rng = np.random.default_rng(2)
    X, Xv = rng.normal(size=(30, 6)), rng.normal(size=(25, 6))
    theta = rng.normal(size=6)
    y, yv = X @ theta + rng.normal(size=30), Xv @ theta + rng.normal(size=25)
    xi, mse = fastsd.optimal_xi_validation(X, y, Xv, yv, 0.7, 2, student_lams=steps)
    th = self_distill_refit(X, y, 0.7, xi, steps)
    assert abs(np.mean((yv - Xv @ th) ** 2) - mse) <= 1e-9 * mse
    for _ in range(20):  # no nearby schedule does better
        other = xi + rng.normal(scale=0.1, size=2)
        th = self_distill_refit(X, y, 0.7, other, steps)
        assert np.mean((yv - Xv @ th) ** 2) >= mse * (1 - 1e-12)


def test_teacher_student_sweeps_match_core_and_reference():
    rng = np.random.default_rng(4)
    X, theta = rng.normal(size=(3, 25, 6)), rng.normal(size=(3, 6))
    y = np.einsum("bnd,bd->bn", X, theta)
    y = y + rng.normal(size=y.shape)
    Xe, ye = rng.normal(size=(3, 10, 6)), rng.normal(size=(3, 10))
    lams, students, xis, K = np.logspace(-2, 2, 4), np.array([0.05, 1.0, 30.0]), [-0.5, 0.7, 1.9], 3
    risk = fastsd.sweep_risk(X, theta, 0.3, lams, xis, K, student_lams=students)
    assert risk.shape == (3, 4, 3, 3, K + 1)
    assert_allclose(
        risk,
        fastsd.sweep_risk(X, theta, 0.3, lams, xis, K, student_lams=students, backend="numpy"),
        rtol=1e-12,
    )
    mse = fastsd.sweep_mse(X, y, Xe, ye, lams, xis, K, student_lams=students)
    assert_allclose(
        mse,
        fastsd.sweep_mse(X, y, Xe, ye, lams, xis, K, student_lams=students, backend="numpy"),
        rtol=1e-12,
    )
    for l_idx, m, g, k in [(0, 2, 1, 3), (3, 0, 2, 2), (1, 1, 0, 0)]:
        sched, steps = np.full(k, xis[g]), np.full(k, students[m])
        assert_allclose(
            risk[:, l_idx, m, g, k],
            fastsd.excess_risk(X, theta, 0.3, lams[l_idx], sched, student_lams=steps),
            rtol=1e-12,
        )
        for b in range(3):
            th = self_distill_refit(X[b], y[b], lams[l_idx], sched, steps)
            assert abs(np.mean((ye[b] - Xe[b] @ th) ** 2) - mse[b, l_idx, m, g, k]) <= (
                RTOL * mse[b, l_idx, m, g, k]
            )
    opt, xi = fastsd.sweep_optimal(X, theta, 0.3, lams, K, student_lams=students, backend="numpy")
    assert opt.shape == (3, 4, 3, K + 1) and xi.shape == (3, 4, 3, K, K)
    opt_nb, xi_nb = fastsd.sweep_optimal(X, theta, 0.3, lams, K, student_lams=students)
    assert_allclose(opt_nb, opt, rtol=1e-12)
    both = np.isfinite(xi) & np.isfinite(xi_nb)
    assert both.sum() >= 0.8 * np.isfinite(xi).sum()
    assert_allclose(xi_nb[both], xi[both], rtol=1e-6)
    want_xi, want = fastsd.optimal_xi(X, theta, 0.3, lams[2], 2, student_lams=[students[1]] * 2)
    assert_allclose(opt[:, 2, 1, 2], want, rtol=1e-12)
    vmse, vxi = fastsd.sweep_optimal_validation(
        X, y, Xe, ye, lams, K, student_lams=students, backend="numpy"
    )
    vmse_nb, vxi_nb = fastsd.sweep_optimal_validation(X, y, Xe, ye, lams, K, student_lams=students)
    assert_allclose(vmse_nb, vmse, rtol=1e-12)
    both = np.isfinite(vxi) & np.isfinite(vxi_nb)
    assert both.sum() >= 0.8 * np.isfinite(vxi).sum()
    assert_allclose(vxi_nb[both], vxi[both], rtol=1e-6)
    _, want = fastsd.optimal_xi_validation(X, y, Xe, ye, lams[0], 3, student_lams=[students[2]] * 3)
    assert_allclose(vmse[:, 0, 2, 3], want, rtol=1e-12)


def test_bad_student_lams_are_named():
    X, y = np.eye(4), np.ones(4)
    with pytest.raises(ValueError, match="student_lams must be a scalar or have shape \\(2,\\)"):
        fastsd.self_distill(X, y, 1.0, [0.5, 0.5], student_lams=[1.0])
    with pytest.raises(ValueError, match="student_lams must be >= 0"):
        fastsd.excess_risk(X, np.ones(4), 1.0, 1.0, [0.5], student_lams=[-1.0])
    with pytest.raises(ValueError, match="student_lams contains NaN"):
        fastsd.optimal_xi(X, np.ones(4), 1.0, 1.0, 1, student_lams=[np.nan])
    with pytest.raises(ValueError, match="student_lams must be >= 0"):
        fastsd.sweep_risk(X[None], np.ones((1, 4)), 1.0, [1.0], [0.5], 2, student_lams=[-1.0])


def test_scalar_student_lams_is_every_student():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(30, 5)), rng.normal(size=30)
    got = fastsd.self_distill(X, y, 0.5, [0.3, 0.7, 1.2], student_lams=2.0)
    assert_allclose(got, fastsd.self_distill(X, y, 0.5, [0.3, 0.7, 1.2], student_lams=[2.0] * 3))


def test_step_lams_is_the_deprecated_name_of_student_lams():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(30, 5)), rng.normal(size=30)
    with pytest.warns(FutureWarning, match="step_lams is renamed student_lams"):
        old = fastsd.self_distill(X, y, 0.5, [0.3, 0.7], step_lams=[1.0, 2.0])
    new = fastsd.self_distill(X, y, 0.5, [0.3, 0.7], student_lams=[1.0, 2.0])
    assert np.array_equal(old, new)
    with pytest.raises(TypeError, match="pass student_lams only"):
        fastsd.self_distill(X, y, 0.5, [0.3], student_lams=[1.0], step_lams=[1.0])


def _mp_optimum(s2, t, var, n, lam_sched, k):
    """min over pi of the k-step risk in 60-digit arithmetic (normal equations are
    fine there): the columns g_j = r_{k-1} ... r_{k-j+1} q_{k-j} formed literally."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 60
    S, T = [mp.mpf(float(v)) for v in s2], [mp.mpf(float(v)) for v in t]
    lams = [mp.mpf(float(v)) for v in lam_sched]
    p = len(S)
    r = [[s / (s + lam) for s in S] for lam in lams]
    q = [[lam / (s + lam) for s in S] for lam in lams]
    a = [1 / (S[j] + lams[k]) for j in range(p)]
    w = [s / n for s in S]
    bw = [w[j] * T[j] ** 2 for j in range(p)]
    nw = [w[j] * var * S[j] * a[j] ** 2 for j in range(p)]
    A = [r[k][j] ** 2 * bw[j] + nw[j] for j in range(p)]
    us = [1 - r[k][j] * bw[j] / A[j] for j in range(p)]
    G = mp.matrix(p, k)
    for j in range(p):
        prod = mp.mpf(1)
        for c in range(k):  # column c = g_{c+1}
            G[j, c] = prod * q[k - 1 - c][j]
            prod *= r[k - 1 - c][j]
    M = mp.matrix(k, k)
    v = mp.matrix(k, 1)
    for i in range(k):
        v[i] = sum(A[j] * G[j, i] * us[j] for j in range(p))
        for c in range(k):
            M[i, c] = sum(A[j] * G[j, i] * G[j, c] for j in range(p))
    pi = mp.lu_solve(M, v)
    u = [sum(G[j, c] * pi[c] for c in range(k)) for j in range(p)]
    risk = sum(bw[j] * (q[k][j] + r[k][j] * u[j]) ** 2 + nw[j] * (1 - u[j]) ** 2 for j in range(p))
    return float(risk)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_ill_conditioned_schedules_match_high_precision(backend):
    """Teacher 1e-3, students 1e-4 (r within 1e-5 of 1 on every node): the
    per-step optimum of every k equals the 60-digit one (a basis built from
    products of factors near 1 misses it by up to 20%)."""
    rng = np.random.default_rng(4)
    X, theta = rng.normal(size=(25, 6)), rng.normal(size=6)
    dec = fastsd.decompose(X)
    t = dec.project_theta(theta)
    K = 6
    risk, _ = fastsd.sweep_optimal(dec, theta, 0.3, [1e-3], K, student_lams=[1e-4], backend=backend)
    for k in range(1, K + 1):
        want = _mp_optimum(dec.s2, t, 0.3, 25, [1e-3] + [1e-4] * k, k)
        assert abs(risk[0, 0, k] - want) <= 1e-9 * want


@pytest.mark.parametrize(
    "lam,steps",
    [(0.0, [1.0, 0.5]), (0.5, [0.0, 2.0]), (0.5, [2.0, 0.0]), (0.0, [0.0, 0.0]), (1.0, [0.0, 1.0])],
)
def test_zero_penalties(design, grid_search, lam, steps):
    """A zero penalty (that step interpolates) removes a pole and a column: the optimum
    still matches the grid, and its schedule is recovered and reproduced by the refit."""
    X, _ = design("tall", 3)
    theta = np.random.default_rng(3).normal(size=X.shape[1])
    xi, risk = fastsd.optimal_xi(X, theta, 0.5, lam, 2, student_lams=steps)
    assert np.all(np.isfinite(xi))
    assert abs(_refit_risk(X, theta, 0.5, lam, xi, steps) - risk) <= XI_RTOL * risk
    dec = fastsd.decompose(X)
    _, best = grid_search(
        lambda c: fastsd.excess_risk(dec, theta, 0.5, np.full(len(c), lam), c, student_lams=steps),
        2,
        box=max(10.0, 2 * np.max(np.abs(xi))),
    )
    assert risk <= best * (1 + 1e-9) and best <= risk * (1 + 1e-6)
    nb, _ = fastsd.sweep_optimal(X, theta, 0.5, [lam], 2, student_lams=[steps[0]])
    ref, _ = fastsd.sweep_optimal(X, theta, 0.5, [lam], 2, student_lams=[steps[0]], backend="numpy")
    assert_allclose(nb, ref, rtol=1e-12)
