"""The filter module (fastsd/math/filters.py) on its own: every backend builds on it."""

from fractions import Fraction

import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose

from fastsd.math import filters
from fastsd.math.reparam import steps_table

RNG = np.random.default_rng(11)


def _factors(p=7, lam=0.3):
    s2 = np.sort(RNG.uniform(0.1, 5.0, p))[::-1]
    r, q, a = filters.step_factors(s2, np.array([lam]))
    return s2, r[0], q[0], a[0]


@pytest.mark.parametrize("xi", [[0.5], [0.2, 1.7, -0.4], [3.0, 3.0, 3.0, 3.0]])
def test_sd_step_is_the_refit_step_in_u_form(xi):
    _, r, q, _ = _factors()
    u, phi = np.zeros_like(r), np.ones_like(r)
    for x in xi:
        u = filters.sd_step(u, r, q, x)
        phi = filters.refit_step(phi, r, x)
    assert_allclose(u, 1.0 - phi, rtol=1e-12, atol=1e-14)


def test_step_factors_zero_direction_carries_nothing():
    r, q, a = filters.step_factors(np.array([2.0, 0.0]), np.array([0.5, 4.0]))
    assert_allclose(r[:, 1], 0.0)
    assert_allclose(q[:, 1], 1.0)
    assert_allclose(a[:, 1], 0.0)
    assert_allclose(r[:, 0] + q[:, 0], 1.0, rtol=1e-15)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_products_round_trip(k):
    xi = RNG.uniform(0.2, 2.0, size=(3, k))
    back = filters.xi_from_products(filters.products_from_xi(xi))
    assert_allclose(back, xi, rtol=1e-13)


def test_xi_from_products_into_matches_the_vectorized_form():
    pi = np.array([0.7, 0.0, 0.0, 1.3])
    want = filters.xi_from_products(pi[None])[0]
    got = np.empty(4)
    filters.xi_from_products_into(pi, 4, got)  # plain Python here (register_jitable)
    assert_allclose(got, want, equal_nan=True)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_step_columns_reproduce_the_recursion(k):
    """u_k = sum_j pi_j g_j for per-step penalties."""
    s2 = np.sort(RNG.uniform(0.1, 5.0, 6))[::-1]
    lams = RNG.uniform(0.05, 2.0, size=(1, k + 1))
    rs, qs, _ = filters.step_factors(s2, lams)
    xi = RNG.uniform(-0.5, 1.5, k)
    u = np.zeros(s2.size)
    for i in range(k):
        u = filters.sd_step(u, rs[0, i], qs[0, i], xi[i])
    G = filters.step_columns(rs[0], qs[0], k)
    assert_allclose(G @ filters.products_from_xi(xi), u, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("force_r", [False, True])
def test_arnoldi_kernel_matches_polynomial_basis(force_r):
    _, r, q, _ = _factors(p=9)
    w = RNG.uniform(0.5, 2.0, 9)
    K = 5
    basis, h, alive = filters.polynomial_basis(r, q, w, K, force_r=force_r)
    b2, h2, a2 = np.empty((K, 9)), np.empty((K, K)), np.empty(K, dtype=bool)
    filters.arnoldi(r, q, w, b2, h2, a2, force_r)
    assert np.array_equal(alive, a2)
    assert_allclose(b2, basis, rtol=1e-9, atol=1e-12)
    gram = (basis * w) @ basis.T
    assert_allclose(gram[alive][:, alive], np.eye(alive.sum()), atol=1e-10)


def _exact_fma(a, b, c):
    return float(Fraction(a) * Fraction(b) + Fraction(c))  # rounded once, to nearest


@pytest.mark.parametrize("n", [0, 3, 8, 13, 64, 67])
def test_dot_sums_in_its_written_order(n):
    """filters.dot (compiled only: its partial sums are SIMD vectors) rounds exactly as
    its docstring writes the order, for contiguous and strided vectors alike."""
    dot = numba.njit(lambda a, b: filters.dot(a, b))
    a = (RNG.standard_normal(2 * n) * np.exp(RNG.uniform(-20, 20, 2 * n)))[::2]  # strided
    b = RNG.standard_normal(n)
    s = [0.0] * 8
    whole = n - n % 8
    for j in range(n):
        t = j % 8 if j < whole else 0
        s[t] = _exact_fma(a[j], b[j], s[t])
    want = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
    assert dot(np.ascontiguousarray(a), b) == want
    assert dot(a, b) == want


def test_polynomial_basis_breaks_down_on_few_distinct_nodes():
    r = np.array([0.8, 0.8, 0.3, 0.3])
    q = 1 - r
    basis, _, alive = filters.polynomial_basis(r, q, np.ones(4), 4)
    assert alive.tolist() == [True, True, False, False]
    assert not basis[2:].any()


def test_steps_table_puts_ridge_first():
    xi = RNG.normal(size=(2, 3, 3))
    table = steps_table(xi)
    assert table.shape == (2, 4, 3)
    assert np.isnan(table[:, 0]).all() and np.array_equal(table[:, 1:], xi)
