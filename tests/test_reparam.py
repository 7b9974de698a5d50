"""xi <-> xibar, the parameterization in which every squared risk is quadratic."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import fastsd


def phi_recursion(xi, r):
    """phi_k by the definition phi_i = xi_i r phi_{i-1} + 1 - xi_i."""
    phi = np.ones_like(r)
    for x in xi:
        phi = x * r * phi + (1.0 - x)
    return phi


def phi_from_xibar(xibar, q):
    """phi_k = 1 - sum_m xibar_m q^m."""
    return 1.0 - sum(b * q ** (m + 1) for m, b in enumerate(xibar))


def test_k2_example_from_math_md():
    rng = np.random.default_rng(0)
    for xi1, xi2 in rng.uniform(-5.0, 5.0, size=(20, 2)):
        assert_allclose(fastsd.xi_to_xibar([xi1, xi2]), [xi2 * (1 + xi1), -xi1 * xi2], rtol=1e-15)
    assert_allclose(fastsd.xi_to_xibar([0.5, 2.0]), [3.0, -1.0], rtol=0)
    assert_allclose(fastsd.xibar_to_xi([3.0, -1.0]), [0.5, 2.0], rtol=1e-15)


def test_k1_and_k0():
    assert_allclose(fastsd.xi_to_xibar([0.7]), [0.7])
    assert_allclose(fastsd.xibar_to_xi([-2.5]), [-2.5])
    assert fastsd.xi_to_xibar([]).shape == (0,)
    assert fastsd.xibar_to_xi([]).shape == (0,)


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_filter_identity(k):
    """1 - sum xibar_m q^m equals the phi recursion at every r (q = 1 - r)."""
    rng = np.random.default_rng(k)
    r = np.linspace(0.0, 1.0, 11)
    for xi in rng.uniform(-3.0, 3.0, size=(10, k)):
        xibar = fastsd.xi_to_xibar(xi)
        assert_allclose(
            phi_from_xibar(xibar, 1.0 - r), phi_recursion(xi, r), rtol=1e-12, atol=1e-12
        )


def test_batched_leading_axes():
    rng = np.random.default_rng(1)
    xi = rng.uniform(0.5, 2.0, size=(3, 4, 5)) * rng.choice([-1.0, 1.0], size=(3, 4, 5))
    xibar = fastsd.xi_to_xibar(xi)
    assert xibar.shape == xi.shape
    for i in range(3):
        for j in range(4):
            assert_allclose(xibar[i, j], fastsd.xi_to_xibar(xi[i, j]), rtol=1e-15)
    assert_allclose(fastsd.xibar_to_xi(xibar), xi, rtol=1e-10)


nonzero_xi = st.one_of(st.floats(-5.0, -0.2), st.floats(0.2, 5.0))


@settings(max_examples=50, deadline=None, derandomize=True)
@given(xi=st.lists(nonzero_xi, min_size=1, max_size=6))
def test_round_trip(xi):
    """xibar_to_xi(xi_to_xibar(xi)) == xi for xi without zeros.

    xibar -> xi recovers each xi_i as a sum of coefficients of size up to
    prod(1 + |xi|) <= 6^6 ~ 5e4, so cancellation can cost eps * 5e4 / 0.2 ~ 5e-11
    relative; 1e-9 leaves room (20000 random draws reach 5e-12).
    """
    xi = np.array(xi)
    xibar = fastsd.xi_to_xibar(xi)
    assert xibar.shape == xi.shape and np.all(np.isfinite(xibar))
    back = fastsd.xibar_to_xi(xibar)
    assert_allclose(back, xi, rtol=1e-9)
    # and the other way round, up to the same rounding
    assert_allclose(fastsd.xi_to_xibar(back), xibar, rtol=1e-9, atol=1e-12 * np.max(np.abs(xibar)))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(xibar=st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=6))
def test_xibar_round_trip_or_error(xibar):
    """Any xibar maps to xi (and back) unless some xi would be 0 (then ValueError)."""
    xibar = np.array(xibar)
    try:
        xi = fastsd.xibar_to_xi(xibar)
    except ValueError as exc:
        assert "xibar" in str(exc)
        return
    assert np.all(xi != 0) and np.all(np.isfinite(xi))
    # The filters agree. Near a zero xi the map is ill-conditioned (huge xi);
    # rounding in the inverse map and in the recursion is amplified by at most
    # ~prod(1 + |xi|) (1 + sum |xibar|) eps-sized steps, so allow 1e-13 times that
    # (50000 random and near-cancelling draws stay below 1e-16 times it).
    q = np.linspace(0.0, 1.0, 7)
    scale = np.prod(1 + np.abs(xi)) * (1 + np.sum(np.abs(xibar)))
    assert_allclose(
        phi_recursion(xi, 1.0 - q), phi_from_xibar(xibar, q), rtol=0, atol=1e-13 * scale
    )


ZERO_XI_CASES = [
    [0.0],
    [0.0, 0.0],
    [1.0, -1.0],  # coefficient sum 0: xi_2 = 0
    [2.0, -1.0, -1.0],  # xi_3 = 0
    [2.0, 0.0],  # xi_to_xibar([0, 2]): a reset as step 1
    list(fastsd.xi_to_xibar([1.5, 0.0, -2.0])),  # a reset in the middle
]


@pytest.mark.parametrize("xibar", ZERO_XI_CASES)
def test_xibar_to_xi_raises_where_a_xi_would_be_zero(xibar):
    with pytest.raises(ValueError, match="xibar"):
        fastsd.xibar_to_xi(xibar)


def test_xibar_to_xi_raises_for_any_row_of_a_batch():
    xibar = np.array([[3.0, -1.0], [1.0, -1.0]])
    with pytest.raises(ValueError, match="xibar"):
        fastsd.xibar_to_xi(xibar)


@pytest.mark.parametrize("fn,name", [(fastsd.xi_to_xibar, "xi"), (fastsd.xibar_to_xi, "xibar")])
def test_reparam_bad_input(fn, name):
    with pytest.raises(ValueError, match=name):
        fn(0.5)
    with pytest.raises(ValueError, match=name):
        fn([0.5, np.nan])
    with pytest.raises(ValueError, match=name):
        fn([np.inf])
    with pytest.raises(TypeError, match=name):
        fn(["a", "b"])


def test_reparam_does_not_modify_input():
    xi = np.array([0.5, -2.0, 3.0])
    xi32 = xi.astype(np.float32)
    before, before32 = xi.copy(), xi32.copy()
    xibar = fastsd.xi_to_xibar(xi)
    fastsd.xi_to_xibar(xi32)
    xibar_copy = xibar.copy()
    fastsd.xibar_to_xi(xibar)
    assert np.array_equal(xi, before) and np.array_equal(xi32, before32)
    assert np.array_equal(xibar, xibar_copy)
    assert_allclose(fastsd.xi_to_xibar(xi32), fastsd.xi_to_xibar(xi32.astype(np.float64)), rtol=0)
