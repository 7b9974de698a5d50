r"""Exact leave-one-out of the whole k-step procedure, without refits.

Leaving out point i, the teacher and every student are refit on the other
n - 1 points. With A = X^T X + lam I (plus an unpenalized intercept) and
A_i = A - x_i x_i^T, the left-out k-step estimator is (see docs/user_guide/tuning.md)

    theta_k^(-i) = theta_0^(-i) - sum_m xibar_m T_i^m theta_0^(-i),
    T_i = A_i^{-1} Lambda   (Lambda = lam on the features, 0 on the intercept),

so its prediction at x_i is P_0 - sum_m xibar_m P_m with P_m = x_i^T T_i^m theta_0^(-i):
affine in xibar, and the LOO error sum_i (y_i - P_0 + sum_m xibar_m P_m)^2 is a
least-squares problem in xibar, solved for every k <= K at once
(:func:`fastsd.estimators._tuning.nested_lstsq`).

Computing P_m. In the eigenbasis of the (centered) design, D = diag(1/(s^2 + lam)),
Q = diag(q) with q = lam/(s^2 + lam) (0 on the intercept direction, whose
"eigenvalue" is n and which is not penalized), g = row i of U diag(s) (and
1 on the intercept), h = g^T D g the leverage. Sherman-Morrison gives
A_i^{-1} v = D v + D g (g^T D v)/(1 - h), hence T_i v = Q v + (g^T Q v)/(1 - h) D g,
and with the moments

    Mg_j = g^T Q^j D g,    Mb_j = g^T Q^j D (X^T y - x_i y_i) = F_j - y_i Mg_j,
    F_j = g^T Q^j D z  (z = V^T X^T y),

unrolling the recursion gives the convolution (a generating-function identity
P(t) (1 - Mg(t)) = Mb(t)):

    (1 - h) P_m = Mb_m + sum_{j=0}^{m-1} P_j Mg_{m-j},    Mg_0 = h.

(m = 0 is the classic ridge LOO prediction (yhat_i - h y_i)/(1 - h).) The
moments of all points, lambdas and j = 0..K are two matrix products
(U o U) @ W and U @ W' with W of shape (p, L (K + 1)): O(n p L K) flops in
BLAS, then O(K^2) per point, i.e. O(k p) per point per lambda as promised.

The intercept adds w_i/sum(w) to h (and nothing to the other moments, since
the prepared targets are weighted-centered). Sample weights: rows and targets
are scaled by sqrt(w_i), so the criterion is sum_i w_i (y_i - yhat_i^(-i))^2 / sum(w);
a zero-weight point is as if absent. Points of leverage 1 (e.g. lam = 0 with
n <= d + 1) make the LOO error undefined: that lambda gets risk inf.

Conditioning: the columns P_m are monomials in the left-out operator T_i (which
differs per point, so a spectral orthogonal-polynomial basis does not apply);
they are column-scaled before the Householder QR, numerically dependent columns
truncate the usable k, and an xi that does not reproduce the minimum is NaN.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import comb
from sklearn.utils.validation import _check_sample_weight, check_X_y

from ..math.reparam import xi_to_xibar
from ..reference.spectral import inverse_shift, spectral_factors
from ._base import LAM, _Prepared, _validated, _xi_values
from ._tuning import TuningTable, nested_lstsq, reject_unreproducible, xi_from_rows

__all__ = [
    "loo_columns",
    "loo_table",
    "loo_table_from_columns",
    "loo_predictions",
    "nested_loo",
    "nested_loo_exact",
]

#: 1 - leverage at or below this: leave-one-out undefined for that lambda.
LEVERAGE_TOL = 1e-10
#: Relative pivot of the column-scaled LOO columns P_1..P_k below which the
#: nested estimate refuses k (as GCV_RCOND: a k-column fit there is rounding noise).
NESTED_RCOND = float(np.sqrt(np.finfo(np.float64).eps))


def loo_columns(
    U: NDArray[np.float64],
    s2: NDArray[np.float64],
    Y: NDArray[np.float64],
    sqrt_w: NDArray[np.float64] | None,
    w_sum: float,
    fit_intercept: bool,
    lams: NDArray[np.float64],
    max_steps: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """LOO ridge residuals and the columns P_m of the k-step LOO predictions.

    Parameters
    ----------
    U : ndarray of shape (n, p)
        Left singular vectors of the prepared design (zero where s2 == 0).
    s2 : ndarray of shape (p,)
    Y : ndarray of shape (n, T)
        Prepared (centered, sqrt(w)-scaled) targets.
    sqrt_w : ndarray of shape (n,) or None
    w_sum : float
    fit_intercept : bool
    lams : ndarray of shape (L,)
    max_steps : int

    Returns
    -------
    e0 : ndarray of shape (L, T, n)
        sqrt(w_i) (y_i - ridge LOO prediction).
    P : ndarray of shape (L, K, T, n)
        The k-step LOO residual is e0 + sum_m xibar_m P[:, m - 1].
    defined : ndarray of bool, shape (L,)
    """
    n, p = U.shape
    T = Y.shape[1]
    K = max_steps
    L = lams.size
    d = inverse_shift(s2, lams)  # (L, p), 0 where s2 == 0
    _, q = spectral_factors(s2, lams)
    wg = (s2 * d)[:, None, :] * q[:, None, :] ** np.arange(K + 1)[:, None]  # (L, K+1, p)
    A = Y.T @ U  # (T, p)
    # moments with the points on the last (contiguous) axis
    Mg = (wg.reshape(-1, p) @ (U * U).T).reshape(L, K + 1, 1, n)
    F = ((wg[:, :, None, :] * A).reshape(-1, p) @ U.T).reshape(L, K + 1, T, n)

    h = Mg[:, 0, 0].copy()  # (L, n)
    if fit_intercept:
        h += (1.0 if sqrt_w is None else sqrt_w * sqrt_w) / w_sum
    one_minus_h = 1.0 - h
    defined = np.all(one_minus_h > LEVERAGE_TOL, axis=1)
    inv = (1.0 / np.where(defined[:, None], one_minus_h, 1.0))[:, None, :]  # (L, 1, n)

    y = Y.T[None]  # (1, T, n)
    P = np.empty((L, K + 1, T, n))
    P[:, 0] = (F[:, 0] - y * h[:, None, :]) * inv
    for m in range(1, K + 1):
        acc = F[:, m] - y * Mg[:, m]
        for j in range(m):
            acc += P[:, j] * Mg[:, m - j]
        P[:, m] = acc * inv
    e0 = y - P[:, 0]
    return e0, P[:, 1:], defined


def _xibar_to_h_matrix(K: int) -> NDArray[np.float64]:
    """B with h = xibar @ B: u = sum_m xibar_m q^m = q sum_m xibar_m (1 - r)^(m-1)."""
    m = np.arange(K)[:, None]
    j = np.arange(K)[None, :]
    return cast("NDArray[np.float64]", np.where(j <= m, comb(m, j) * (-1.0) ** j, 0.0))


def _loo_risk(Rm: NDArray[np.float64], xibar: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sum of squared LOO residuals e0 + P xibar for each row of xibar (L, J, K).

    ``Rm`` (L, m, K + 1) is the R factor of [P, e0] (all points and targets as
    rows): ||[P, e0] [xibar; 1]|| = ||Rm [xibar; 1]||, a short sum of squares.
    """
    res: NDArray[np.float64] = Rm[:, None, :, -1] + np.einsum("lmk,ljk->ljm", Rm[:, :, :-1], xibar)
    return cast("NDArray[np.float64]", np.sum(res * res, axis=-1))


def nested_loo(
    e0: NDArray[np.float64], P: NDArray[np.float64], defined: NDArray[np.bool_], w_sum: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Honest risk of the LOO-fitted schedules: leave-one-out of the xi fit itself.

    The LOO-optimal xibar minimizes ||e0 + P xibar||^2 over k free coefficients
    fitted to the same n residuals it is then scored on, so its minimum is
    optimistic by about 2 k sigma^2 / n (more when the optimal xi are huge).
    Treating that fit as what it is -- a least-squares regression of -e0 on
    the k columns P_1..P_k (a stacking of the k + 1 leave-one-out predictors)
    -- its own leave-one-out residuals are exact and closed form: with the
    thin QR P_k = Q_k R_k, the residual is e = e0 - Q_k Q_k^T e0 and leaving
    point i out of the xi fit gives e_i / (1 - g_i), g_i = ||Q_k[i]||^2 (for
    several targets, the rows of point i form a block: (I - G_ii)^{-1} e_i).
    This is nested leave-one-out up to the O(1/n) dependence of the other
    points' LOO residuals on point i. Cost: one thin QR of n T x K per lambda.

    Parameters
    ----------
    e0 : ndarray of shape (L, T, n)
    P : ndarray of shape (L, K, T, n)
    defined : ndarray of bool, shape (L,)
    w_sum : float

    Returns
    -------
    risk : ndarray of shape (L, K + 1)
        sum_i w_i (nested LOO residual)^2 / sum(w), averaged over targets;
        column 0 is the ordinary ridge LOO risk. ``inf`` where undefined
        (leverage 1 in either level, or P_k numerically rank deficient:
        relative QR pivot below ``NESTED_RCOND``).
    losses : ndarray of shape (L, K + 1, n)
        Per-point w_i (residual)^2 averaged over targets (risk = losses summed
        over points / sum(w)).
    """
    L, K, T, n = P.shape
    loss0 = np.sum(e0 * e0, axis=1) / T  # (L, n)
    losses = np.zeros((L, K + 1, n))
    losses[:, 0] = loss0
    risk = np.full((L, K + 1), np.inf)
    risk[:, 0] = np.where(defined, loss0.sum(axis=-1) / w_sum, np.inf)
    if K == 0:
        return risk, losses
    M = np.swapaxes(P.reshape(L, K, T * n), 1, 2)  # (L, N, K)
    norms = np.sqrt(np.sum(M * M, axis=1))
    alive = np.isfinite(norms) & (norms > 0)
    M = np.where(alive[:, None, :], M / np.where(alive, norms, 1.0)[:, None, :], 0.0)
    Q, R = np.linalg.qr(M)
    diag = np.abs(np.diagonal(R, axis1=-2, axis2=-1))
    top = np.max(diag, axis=-1, keepdims=True)
    usable = np.cumprod(alive & (diag > NESTED_RCOND * top), axis=-1).astype(bool)
    Q = np.where(usable[:, None, :], Q, 0.0)
    e = e0.reshape(L, T * n)
    coef = np.einsum("lnk,ln->lk", Q, e)
    resid = e[:, :, None] - np.cumsum(Q * coef[:, None, :], axis=-1)  # (L, N, K)
    Qp = Q.reshape(L, T, n, K)
    resid = resid.reshape(L, T, n, K)
    ok = usable & defined[:, None]
    if T == 1:
        one_minus_g = 1.0 - np.cumsum(Qp[:, 0] ** 2, axis=-1)  # (L, n, K)
        ok &= np.all(one_minus_g > LEVERAGE_TOL, axis=1)
        nested = resid[:, 0] / np.where(one_minus_g > LEVERAGE_TOL, one_minus_g, 1.0)
        losses[:, 1:] = np.moveaxis(nested * nested, -1, 1)
    else:
        G = np.zeros((L, n, T, T))
        eye = np.eye(T)
        for k in range(K):
            G += np.einsum("ltn,lsn->lnts", Qp[..., k], Qp[..., k])
            A = eye - G
            good = np.all(np.diagonal(A, axis1=-2, axis2=-1) > LEVERAGE_TOL, axis=(-2, -1))
            ok[:, k] &= good
            A = np.where(good[:, None, None, None], A, eye)
            nested = np.linalg.solve(A, np.moveaxis(resid[..., k], 1, 2)[..., None])[..., 0]
            losses[:, k + 1] = np.sum(nested * nested, axis=-1) / T
    risk[:, 1:] = np.where(ok, losses[:, 1:].sum(axis=-1) / w_sum, np.inf)
    return risk, losses


#: Memory (bytes) of one block of point pairs in :func:`nested_loo_exact` (cache-sized).
PAIR_BLOCK_BYTES = 4 << 20


def nested_loo_exact(
    U: NDArray[np.float64],
    s2: NDArray[np.float64],
    Y: NDArray[np.float64],
    sqrt_w: NDArray[np.float64] | None,
    w_sum: float,
    fit_intercept: bool,
    lam: float,
    max_steps: int,
    rows: NDArray[np.intp] | None = None,
) -> tuple[NDArray[np.float64], bool]:
    r"""Exact nested leave-one-out losses of the LOO-fitted schedules at one lambda.

    :func:`nested_loo` keeps the other points' LOO columns fixed when point i
    leaves the fit of xibar. They are not: without point i, point j's
    leave-one-out residual is a leave-*two*-out residual, and the difference
    is of the order of the cross-leverage g_i^T D g_j / (1 - h), carrying
    point i's own residual into the rows that fit xibar. At n close to d
    (leverages near 1) this leak makes :func:`nested_loo` far too
    optimistic. Here it is computed exactly: for every pair S = {i, j} the
    predictions at S of the k-step procedure trained without S solve the
    block form of the recursion of :func:`loo_columns`,

        (I - Mg_0) P_m = Mb_m + sum_{l=1}^{m} Mg_l P_{m-l},

    with the 2 x 2 moments Mg_l = G_S^T Q^l D G_S and Mb_l = G_S^T Q^l D
    (X^T y - G_S y_S) (Woodbury on A - G_S G_S^T; the intercept is one more,
    unpenalized coordinate). Point j's component is its residual column in
    the problem without i; xibar^(-i) is fitted to those rows (j != i), and
    the nested residual of i is e0_i + sum_m xibar_m^(-i) P_m,i. Equal to
    refitting everything without point i (tested), at O(K m n p) flops for
    m = len(rows) points and O(n) memory per point, so it is run for one
    lambda only.

    Parameters
    ----------
    U, s2, Y, sqrt_w, w_sum, fit_intercept
        As in :func:`loo_columns`.
    lam : float
    max_steps : int
        K >= 1: row k of the losses is the k-step fit.
    rows : ndarray of int, optional
        The points i to compute (default: all).

    Returns
    -------
    losses : ndarray of shape (K + 1, m)
        Per-point w_i (nested residual)^2 averaged over targets at ``rows``;
        row 0 is the ridge LOO loss.
    defined : bool
        False when some leave-one-out or leave-two-out fit is undefined
        (leverage 1).
    """
    n, p = U.shape
    T = Y.shape[1]
    K = max_steps
    lams = np.array([float(lam)])
    e0_all, P_all, defined = loo_columns(U, s2, Y, sqrt_w, w_sum, fit_intercept, lams, K)
    e0, P = e0_all[0], P_all[0]  # (T, n), (K, T, n)
    d = inverse_shift(s2, lams)[0]
    _, q = spectral_factors(s2, lams)
    wl = (s2 * d)[None, :] * q[0][None, :] ** np.arange(K + 1)[:, None]  # (K + 1, p)
    F = (wl[:, None, :] * (Y.T @ U)[None]) @ U.T  # g_i^T Q^l D z, (K + 1, T, n)
    Mg = wl @ (U * U).T  # g_i^T Q^l D g_i, (K + 1, n)
    c = np.ones(n) if sqrt_w is None else sqrt_w
    if fit_intercept:
        Mg[0] += c * c / w_sum
    cols = np.arange(n)
    rows = cols if rows is None else rows
    losses = np.empty((K + 1, rows.size))
    losses[0] = np.sum(e0[:, rows] ** 2, axis=0) / T
    ok = bool(defined[0])
    yj = Y.T[:, None, :]  # (T, 1, n)
    block = max(1, PAIR_BLOCK_BYTES // (8 * n * (T * (2 * K + 5) + K + 4)))
    for start in range(0, rows.size, block):
        I = rows[start : start + block]
        b = I.size
        C = (U[I][None] * wl[:, None, :]) @ U.T  # cross moments, (K + 1, b, n)
        if fit_intercept:
            C[0] += np.outer(c[I], c) / w_sum
        self_pair = I[:, None] == cols[None, :]
        one_i, one_j = 1.0 - Mg[0][I][:, None], 1.0 - Mg[0][None, :]
        det = one_i * one_j - C[0] * C[0]
        bad = (det <= LEVERAGE_TOL) & ~self_pair
        ok &= not np.any(bad)
        det = np.where(self_pair | bad, 1.0, det)
        # (I - Mg_0)^{-1} = [[a, c0], [c0, e]] / det
        a, c0, e = one_j / det, C[0] / det, one_i / det
        yi = Y.T[:, I][:, :, None]  # (T, b, 1)
        pi: list[NDArray[np.float64]] = []  # predictions at i without {i, j}, (T, b, n)
        pj: list[NDArray[np.float64]] = []  # ... at j
        for m in range(K + 1):
            rhs_i = F[m][:, I][:, :, None] - Mg[m][I][:, None] * yi - C[m] * yj
            rhs_j = F[m][:, None, :] - C[m] * yi - Mg[m][None, :] * yj
            for l in range(1, m + 1):
                rhs_i += Mg[l][I][:, None] * pi[m - l] + C[l] * pj[m - l]
                rhs_j += C[l] * pi[m - l] + Mg[l][None, :] * pj[m - l]
            pi.append(a * rhs_i + c0 * rhs_j)
            pj.append(c0 * rhs_i + e * rhs_j)
        # rows j != i of the xibar fit: columns P_1..P_K and the target -f0, compressed by
        # one R-only QR per point i (as in loo_table)
        stacked = np.stack(pj[1:] + [pj[0] - yj], axis=-1)  # (T, b, n, K + 1)
        stacked[:, self_pair] = 0.0
        M = np.moveaxis(stacked, 0, 1).reshape(b, T * n, K + 1)
        # NumPy's stubs type qr(mode="r") as a QRResult; it returns the R array
        Rm = cast("NDArray[np.float64]", np.linalg.qr(M, mode="r"))
        xibar = nested_lstsq(Rm[:, :, :K], Rm[:, :, K])  # (b, K, K)
        res = e0[:, I].T[:, None, :] + np.einsum("bkm,mtb->bkt", xibar, P[:, :, I])
        losses[1:, start : start + b] = (np.sum(res * res, axis=-1) / T).T
    return losses, ok


def loo_table(
    U: NDArray[np.float64],
    s2: NDArray[np.float64],
    Y: NDArray[np.float64],
    sqrt_w: NDArray[np.float64] | None,
    w_sum: float,
    fit_intercept: bool,
    lams: ArrayLike,
    max_steps: int,
) -> TuningTable:
    """Exact-LOO risks and LOO-optimal schedules for every lambda and k <= K.

    Parameters are those of :func:`loo_columns`.

    Returns
    -------
    TuningTable
        ``risk[l, k]`` = sum_i w_i (y_i - yhat_i^(-i))^2 / sum(w) (averaged over
        targets) at the LOO-optimal k-step xi.
    """
    lams = np.asarray(lams, dtype=np.float64)
    cols = loo_columns(U, s2, Y, sqrt_w, w_sum, fit_intercept, lams, max_steps)
    return loo_table_from_columns(*cols, s2, w_sum, lams)


def loo_table_from_columns(
    e0: NDArray[np.float64],
    P: NDArray[np.float64],
    defined: NDArray[np.bool_],
    s2: NDArray[np.float64],
    w_sum: float,
    lams: NDArray[np.float64],
) -> TuningTable:
    """:func:`loo_table` from the columns of :func:`loo_columns`.

    Parameters
    ----------
    e0 : ndarray of shape (L, T, n)
    P : ndarray of shape (L, K, T, n)
    defined : ndarray of bool, shape (L,)
        The three outputs of :func:`loo_columns` (left unmodified, so that
        :func:`nested_loo` may use them too).
    s2 : ndarray of shape (p,)
    w_sum : float
    lams : ndarray of shape (L,)

    Returns
    -------
    TuningTable
        As :func:`loo_table`.
    """
    L, K, T = lams.size, P.shape[1], e0.shape[1]
    norm = w_sum * T
    e0 = e0.reshape(L, -1)
    risk0 = np.where(defined, np.sum(e0 * e0, axis=-1) / norm, np.inf)
    if K == 0:
        return TuningTable(
            lams, risk0[:, None], np.full((L, 1, 0), np.nan), np.isfinite(risk0)[:, None]
        )
    # compress the n T rows once: one thin QR of [P_1..P_K, e0] per lambda
    M = np.concatenate([P.reshape(L, K, -1), e0[:, None, :]], axis=1)
    # NumPy's stubs type qr(mode="r") as a QRResult; it returns the R array
    Rm = cast("NDArray[np.float64]", np.linalg.qr(np.swapaxes(M, 1, 2), mode="r"))  # (L, m, K + 1)
    xibar = nested_lstsq(Rm[:, :, :K], -Rm[:, :, K])  # (L, K, K): row k-1 = xibar_1..k
    risk_k = np.where(defined[:, None], _loo_risk(Rm, xibar) / norm, np.inf)
    risk = np.concatenate([risk0[:, None], risk_k], axis=1)
    xi = xi_from_rows(xibar @ _xibar_to_h_matrix(K))
    back = np.zeros((L, K + 1, K))
    for k in range(1, K + 1):
        back[:, k, :k] = xi_to_xibar(np.nan_to_num(xi[:, k, :k]))
    achieved = _loo_risk(Rm, back) / norm
    valid, xi = reject_unreproducible(xi, achieved, risk, risk0, s2, lams)
    return TuningTable(lams, risk, xi, valid)


@_validated(
    {
        "X": ["array-like"],
        "y": ["array-like"],
        "lam": [LAM],
        "xi": ["array-like"],
        "fit_intercept": ["boolean"],
        "sample_weight": ["array-like", None],
    }
)
def loo_predictions(
    X: ArrayLike,
    y: ArrayLike,
    lam: float,
    xi: ArrayLike,
    *,
    fit_intercept: bool = True,
    sample_weight: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Exact leave-one-out predictions of k-step self-distillation.

    ``out[i]`` is the prediction at X[i] of
    ``SelfDistilledRidge(lam=lam, xi=xi, fit_intercept=...)`` fitted on all
    points but i (teacher and every student refit without it), computed from
    one decomposition with no refit.

    Parameters
    ----------
    X : array_like of shape (n, d)
    y : array_like of shape (n,) or (n, T)
    lam : float
    xi : sequence of float (length k)
    fit_intercept : bool, default=True
    sample_weight : array_like of shape (n,), optional
        Positive weights (a zero-weight point has no defined LOO prediction:
        NaN).

    Returns
    -------
    y_loo : ndarray of the shape of y
        NaN everywhere if some point has leverage 1 (LOO undefined).
    """
    xibar = xi_to_xibar(_xi_values(xi))
    X_, y_ = cast(
        "tuple[NDArray[np.float64], NDArray[np.float64]]",
        check_X_y(X, y, dtype=np.float64, multi_output=True, y_numeric=True),
    )
    if sample_weight is not None:
        sample_weight = _check_sample_weight(sample_weight, X_, dtype=np.float64)
    prep = _Prepared(X_, y_, sample_weight, fit_intercept)
    dec, _ = prep.decompose()
    e0, P, defined = loo_columns(
        dec.U,
        dec.s2,
        prep.Y,
        prep.sqrt_w,
        prep.w_sum,
        fit_intercept,
        np.array([float(lam)]),
        xibar.size,
    )
    res = (e0[0] + np.tensordot(xibar, P[0], axes=(0, 0))).T  # (n, T) scaled residuals
    if not defined[0]:
        res = np.full_like(res, np.nan)
    if prep.sqrt_w is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            res = res / prep.sqrt_w[:, None]
    Y = y_[:, None] if y_.ndim == 1 else y_
    out: NDArray[np.float64] = Y - res
    return out[:, 0] if y_.ndim == 1 else out
