"""fastsd.decompose: shapes, accuracy, rank handling, reuse by every entry point."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastsd
from fastsd.decomposition import lapack as decompose_kernels

KINDS = ("tall", "wide", "dup", "zero", "wide_dup")
EPS = np.finfo(np.float64).eps
METHODS = ["auto", "gram", "svd"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", KINDS)
def test_shapes_rank_and_reconstruction(design, kind, method):
    X, rank = design(kind, 0)
    n, d = X.shape
    p = min(n, d)
    dec = fastsd.decompose(X, method=method)
    assert isinstance(dec, fastsd.Decomposition)
    assert dec.s2.shape == (p,) and dec.V.shape == (d, p) and dec.U.shape == (n, p)
    assert dec.batch_shape == () and not dec.batched
    assert dec.n_samples == n and dec.n_features == d
    assert int(dec.rank) == rank
    assert np.all(dec.s2 >= 0) and np.all(np.diff(dec.s2) <= 0)
    live = dec.s2 > 0
    # zero directions are exactly zero columns
    assert np.all(dec.V[:, ~live] == 0) and np.all(dec.U[:, ~live] == 0)
    # live columns orthonormal; the Gram route computes U = X V / s, whose
    # orthogonality error grows like eps * s_max / s_min (cond(X) < 1e3 here)
    Vl, Ul = dec.V[:, live], dec.U[:, live]
    assert_allclose(Vl.T @ Vl, np.eye(rank), atol=1e-10)
    assert_allclose(Ul.T @ Ul, np.eye(rank), atol=1e-10)
    scale = np.linalg.norm(X, 2)
    assert_allclose((dec.U * dec.s) @ dec.V.T, X, atol=1e-12 * scale)
    # eigenvalues agree with an SVD up to the Gram route's absolute error
    # (~ max(n, d) eps s_max^2)
    s_ref = np.linalg.svd(X, compute_uv=False)[:p]
    assert_allclose(
        dec.s2, np.where(live, s_ref**2, 0.0), rtol=0, atol=10 * max(n, d) * EPS * scale**2
    )


@pytest.mark.parametrize("kind", KINDS)
def test_svd_and_default_agree(design, relerr, kind):
    X, _ = design(kind, 5)
    y = np.random.default_rng(5).normal(size=X.shape[0])
    theta_star = np.random.default_rng(6).normal(size=X.shape[1])
    d_auto = fastsd.decompose(X)
    d_svd = fastsd.decompose(X, method="svd")
    assert d_svd.method == "svd"
    assert int(d_auto.rank) == int(d_svd.rank)
    scale = np.max(d_svd.s2)
    assert_allclose(d_auto.s2, d_svd.s2, rtol=0, atol=10 * max(X.shape) * EPS * scale)
    lams = np.array([0.0, 1e-3, 1.0, 1e3])
    for xi in ([], [0.5, 1.5], [2.0, -1.0, 0.4, 1.1]):
        assert (
            relerr(
                fastsd.self_distill(d_auto, y, lams, xi), fastsd.self_distill(d_svd, y, lams, xi)
            )
            <= 1e-10
        )
        assert_allclose(
            fastsd.excess_risk(d_auto, theta_star, 0.3, lams, xi),
            fastsd.excess_risk(d_svd, theta_star, 0.3, lams, xi),
            rtol=1e-10,
        )


def test_svd_method_resolves_small_singular_values(spectrum_design):
    """The docstring: method="svd" resolves singular values down to ~eps * s_max.

    s = 1e-10 is far above the SVD's absolute error (~ n eps s_max ~ 3e-15),
    so it must be kept (it is below the Gram route's resolution, sqrt(eps)).
    """
    s = np.array([1.0, 1e-3, 1e-6, 1e-10])
    X = spectrum_design(s, 12, seed=5)
    dec = fastsd.decompose(X, method="svd")
    assert int(dec.rank) == 4
    assert_allclose(np.sqrt(dec.s2), s, rtol=0, atol=1e-14)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", KINDS)
def test_batched_equals_single(design, kind, method):
    Xs = np.stack([design(kind, 30 + b)[0] for b in range(3)])
    ys = np.random.default_rng(3).normal(size=Xs.shape[:2])
    dec = fastsd.decompose(Xs, ys, method=method)
    assert dec.batched and dec.batch_shape == (3,)
    assert dec.s2.shape == (3, min(Xs.shape[1:]))
    for b in range(3):
        one = fastsd.decompose(Xs[b], ys[b], method=method)
        scale = np.max(one.s2)
        assert_allclose(dec.s2[b], one.s2, rtol=0, atol=10 * max(Xs.shape[1:]) * EPS * scale)
        assert int(dec.rank[b]) == int(one.rank)
        # singular vectors are defined up to sign/rotation: compare invariants
        assert_allclose(
            dec.U[b] * np.sqrt(dec.s2[b]) @ dec.V[b].T, Xs[b], atol=1e-12 * np.sqrt(scale)
        )
        assert_allclose(dec.y_norm2[b], ys[b] @ ys[b], rtol=1e-14)


@pytest.mark.parametrize("method", METHODS)
def test_repeated_eigenvalues_are_exactly_repeated(method):
    """Orthogonal columns with equal norms in groups: one eigenvalue per group."""
    rng = np.random.default_rng(0)
    norms = np.repeat([3.0, 2.0, 1.0, 0.5], [4, 3, 5, 2])
    Q, _ = np.linalg.qr(rng.normal(size=(40, norms.size)))
    X = Q * norms
    dec = fastsd.decompose(X, method=method)
    assert np.unique(dec.s2).size == 4
    assert_allclose(np.unique(dec.s2)[::-1], [9.0, 4.0, 1.0, 0.25], rtol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_stored_y_projection(design, kind):
    X, _ = design(kind, 2)
    y = np.random.default_rng(2).normal(size=X.shape[0])
    dec = fastsd.decompose(X, y)
    assert_allclose(
        dec.z, dec.V.T @ (X.T @ y), atol=1e-12 * np.linalg.norm(X) ** 2 * np.linalg.norm(y)
    )
    assert_allclose(dec.y_norm2, y @ y, rtol=1e-14)
    assert fastsd.decompose(X).z is None


@pytest.mark.filterwarnings(
    "ignore::fastsd.exceptions.IllConditionedXiWarning"
)  # rank-deficient kinds
@pytest.mark.parametrize("kind", KINDS)
def test_every_entry_point_accepts_decomposition(design, kind):
    """Passing a Decomposition (with or without y) gives the same answer as X."""
    X, _ = design(kind, 4)
    rng = np.random.default_rng(4)
    y = rng.normal(size=X.shape[0])
    theta_star = rng.normal(size=X.shape[1])
    X_val = rng.normal(size=(9, X.shape[1]))
    y_val = rng.normal(size=9)
    lams = np.array([0.0, 1e-2, 1.0, 1e2])
    xi = [0.3, 1.7]
    dec, dec_y = fastsd.decompose(X), fastsd.decompose(X, y)
    for D, yy in ((dec, y), (dec_y, None), (dec_y, y)):
        assert_allclose(
            fastsd.self_distill(D, yy, lams, xi),
            fastsd.self_distill(X, y, lams, xi),
            rtol=1e-13,
            atol=0,
        )
        got = fastsd.optimal_xi_validation(D, yy, X_val, y_val, lams, 2)
        want = fastsd.optimal_xi_validation(X, y, X_val, y_val, lams, 2)
        assert_allclose(got[0], want[0], rtol=1e-12)
        assert_allclose(got[1], want[1], rtol=1e-12)
    for D in (dec, dec_y):
        assert_allclose(
            fastsd.excess_risk(D, theta_star, 0.5, lams, xi),
            fastsd.excess_risk(X, theta_star, 0.5, lams, xi),
            rtol=1e-13,
        )
        assert_allclose(
            fastsd.oracle_risk(D, theta_star, 0.5, lams),
            fastsd.oracle_risk(X, theta_star, 0.5, lams),
            rtol=1e-13,
        )
        got = fastsd.optimal_xi(D, theta_star, 0.5, lams, 2)
        want = fastsd.optimal_xi(X, theta_star, 0.5, lams, 2)
        assert_allclose(got[0], want[0], rtol=1e-12)
        assert_allclose(got[1], want[1], rtol=1e-12)


def test_decompose_rejects_decomposition_and_bad_method(design):
    X, _ = design("tall", 0)
    with pytest.raises(TypeError, match="X"):
        fastsd.decompose(fastsd.decompose(X))
    with pytest.raises(ValueError, match="method"):
        fastsd.decompose(X, method="qr")


def test_missing_y_without_stored_y_names_y(design):
    X, _ = design("tall", 0)
    with pytest.raises(ValueError, match="y"):
        fastsd.self_distill(fastsd.decompose(X), None, 1.0, [0.5])


# ---------------------------------------------------------------------------
# accuracy at condition numbers 1e4, 1e8, 1e12 against a 40-digit SVD


def _mp_singular_values(X):
    """Singular values of the float64 X itself, to 40 digits (mpmath)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(40):
        s = mpmath.svd_r(mpmath.matrix(X.tolist()), compute_uv=False)
        return np.array([float(v) for v in s])


@pytest.mark.parametrize("cond", [1e4, 1e8, 1e12])
@pytest.mark.parametrize("shape", [(40, 8), (8, 40)])
@pytest.mark.parametrize("route", ["gram", "gram_blas", "svd", "qr_svd", "streamed"])
def test_accuracy_against_extended_precision(spectrum_design, cond, shape, route, monkeypatch):
    """Each route meets its documented bound (docs/user_guide/numerics.rst):

    * Gram (in memory or streamed): |s^2 - s_ref^2| <= c max(n, d) eps s_max^2,
      and exactly 0 at or below the cutoff max(n, d) eps s_max^2;
    * SVD and QR + SVD: |s - s_ref| <= c max(n, d) eps s_max, 0 at or below
      max(n, d) eps s_max.

    Values within a factor 10 of a cutoff may fall either way and are only
    held to the error bound.
    """
    n, d = shape
    p = min(n, d)
    s = np.logspace(0, -np.log10(cond), p)
    X = spectrum_design(s, max(n, d), seed=int(np.log10(cond)))
    X = X if n >= d else X.T.copy()
    ref = _mp_singular_values(X)
    if route == "streamed":
        dec = fastsd.decompose(iter(np.array_split(X, 3)))
    elif route == "gram_blas":  # the dsyrk + dsyevd path that larger X take
        monkeypatch.setattr(decompose_kernels, "SERIAL_FLOPS", 0)
        dec = fastsd.decompose(X)
    else:
        dec = fastsd.decompose(X, method=route)
    got = np.sqrt(dec.s2)[:p]
    c = 10 * max(n, d) * EPS
    if route in ("svd", "qr_svd"):
        err, cut, vals, ref_vals = np.abs(got - ref), c / 10 * ref[0], got, ref
        bound = c * ref[0]
    else:
        err, cut, vals, ref_vals = (
            np.abs(dec.s2[:p] - ref**2),
            c / 10 * ref[0] ** 2,
            dec.s2[:p],
            ref**2,
        )
        bound = c * ref[0] ** 2
    clear = np.abs(np.log10(ref_vals / cut)) > 1
    assert np.all(err <= bound), (err / bound).max()
    assert np.all(vals[clear & (ref_vals < cut)] == 0)
    assert np.all(vals[clear & (ref_vals > cut)] > 0)
    # eigenvectors of the Gram side the route computes (V if n >= d or streamed, else U;
    # the other, X V / s, loses ~eps s_max / s_j): residual within the bound
    live = dec.s2 > 0
    W, G = (dec.V, X.T @ X) if n >= d or route in ("streamed", "svd") else (dec.U, X @ X.T)
    W = W[:, live]
    resid = np.linalg.norm(G @ W - W * dec.s2[live], axis=0)
    assert np.all(resid <= 10 * c * ref[0] ** 2)


@pytest.mark.parametrize("kind", KINDS)
def test_qr_route_agrees_with_svd(design, kind):
    X, rank = design(kind, 8)
    rng = np.random.default_rng(8)
    y, theta = rng.normal(size=X.shape[0]), rng.normal(size=X.shape[1])
    d_qr, d_svd = fastsd.decompose(X, y, method="qr_svd"), fastsd.decompose(X, y, method="svd")
    assert d_qr.method == "qr_svd" and int(d_qr.rank) == rank == int(d_svd.rank)
    s_max = np.sqrt(d_svd.s2[0])
    assert_allclose(
        np.sqrt(d_qr.s2), np.sqrt(d_svd.s2), rtol=0, atol=10 * max(X.shape) * EPS * s_max
    )
    assert_allclose((d_qr.U * d_qr.s) @ d_qr.V.T, X, atol=1e-12 * s_max)
    lams = np.array([0.0, 1e-3, 1.0, 1e3])
    assert_allclose(
        fastsd.excess_risk(d_qr, theta, 0.3, lams, [0.5, 1.5]),
        fastsd.excess_risk(d_svd, theta, 0.3, lams, [0.5, 1.5]),
        rtol=1e-10,
    )
    assert_allclose(
        fastsd.self_distill(d_qr, None, lams, [0.5]),
        fastsd.self_distill(d_svd, None, lams, [0.5]),
        rtol=1e-9,
        atol=1e-12,
    )


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_blas_path_equals_stacked_numpy_path(design, kind, batch, threads, monkeypatch):
    """The per-problem dsyrk + dsyevd path (taken above SERIAL_FLOPS) against NumPy's
    stacked path on rank-deficient, wide and duplicated-column designs."""
    X = (
        design(kind, 9)[0]
        if batch is None
        else np.stack([design(kind, 9 + b)[0] for b in range(batch)])
    )
    rng = np.random.default_rng(9)
    y, theta = rng.normal(size=X.shape[:-1]), rng.normal(size=X.shape[:1] + X.shape[-1:])
    theta = theta if batch else theta[0]
    want = fastsd.decompose(X, y)
    monkeypatch.setattr(decompose_kernels, "SERIAL_FLOPS", 0)
    got = fastsd.decompose(X, y, threads=threads)
    n, d = X.shape[-2:]
    scale = np.max(want.s2)
    assert np.array_equal(got.rank, want.rank)
    assert_allclose(got.s2, want.s2, rtol=0, atol=10 * max(n, d) * EPS * scale)
    lams = np.array([0.0, 1e-2, 1.0, 1e2])
    assert_allclose(
        fastsd.sweep_risk(got, theta, 0.5, lams, [0.5, 1.5], 3),
        fastsd.sweep_risk(want, theta, 0.5, lams, [0.5, 1.5], 3),
        rtol=1e-10,
    )
    assert_allclose(
        fastsd.self_distill(got, None, lams, [0.5]),
        fastsd.self_distill(want, None, lams, [0.5]),
        rtol=1e-9,
        atol=1e-12,
    )
    live = got.s2 > 0
    recon = np.einsum("...np,...p,...dp->...nd", got.U, np.sqrt(got.s2), got.V)
    assert_allclose(recon, X, atol=1e-12 * np.sqrt(scale))
    assert np.all((got.V == 0) | live[..., None, :])  # cut directions are exact zeros


def test_blas_path_repeated_eigenvalues_and_nan(monkeypatch):
    monkeypatch.setattr(decompose_kernels, "SERIAL_FLOPS", 0)
    rng = np.random.default_rng(0)
    norms = np.repeat([3.0, 2.0, 1.0, 0.5], [4, 3, 5, 2])
    Q, _ = np.linalg.qr(rng.normal(size=(40, norms.size)))
    dec = fastsd.decompose(Q * norms)
    assert_allclose(np.unique(dec.s2)[::-1], [9.0, 4.0, 1.0, 0.25], rtol=1e-13)
    X = rng.normal(size=(2, 50, 4))
    X[1, 7, 2] = np.nan
    with pytest.raises(
        ValueError,
        match=r"X contains NaN or infinite values "
        r"\(first at problem 1, row 7, column 2\)",
    ):
        fastsd.decompose(X)
    with pytest.raises(ValueError, match="too large"):
        fastsd.decompose(np.full((10, 3), 1e300))


def test_unaligned_input_gives_the_same_decomposition():
    """An unaligned float64 buffer (Dask unpickles arrays out of band like this) is
    decomposed bit for bit as the aligned array: NumPy would otherwise skip BLAS."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 128, 4))
    raw = np.zeros(X.nbytes + 1, dtype=np.uint8)
    unaligned = np.frombuffer(raw[1:].data, dtype=np.float64).reshape(X.shape)
    unaligned[...] = X
    assert not unaligned.flags.aligned
    want, got = fastsd.decompose(X), fastsd.decompose(unaligned)
    assert np.array_equal(got.s2, want.s2)
    assert np.array_equal(got.V, want.V)


def test_backend_argument_is_deprecated_and_changes_nothing():
    X = np.random.default_rng(0).normal(size=(3, 20, 5))
    with pytest.warns(FutureWarning, match="decompose\\(backend=...\\) has no effect"):
        old = fastsd.decompose(X, backend="numba")
    new = fastsd.decompose(X)
    assert np.array_equal(old.s2, new.s2) and np.array_equal(old.V, new.V)
    with pytest.raises(ValueError, match="backend must be"):
        fastsd.decompose(X, backend="gpu")
