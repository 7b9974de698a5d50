r"""One-shot GCV tuning of k-step self-distillation (no held-out data, no refits).

Dang, Patil & Rinaldo (arXiv 2602.17565) tune 1-step SD from GCV-corrected
estimates of the risks of the teacher (smoother H) and of the fully distilled
student (H^2) and their cross term. The k-step predictions are

    X theta_k = sum_{m=0..k} c_m H^{m+1} y,   sum_m c_m = 1,

since phi_k(r) r = sum_m c_m r^{m+1} with phi_k a degree-k polynomial in r and
phi_k(1) = 1. The generalized rule takes the GCV-corrected cross-risk matrix of
the k + 1 basis smoothers,

    R_lm = <(I - H^{l+1}) y, (I - H^{m+1}) y>/n / [(1 - tr H^{l+1}/n)(1 - tr H^{m+1}/n)],

and minimizes c^T R c subject to 1^T c = 1, whose solution is
c = R^{-1} 1 / (1^T R^{-1} 1); for k = 1 it is the DPR closed form
xi = (R_00 - R_01)/(R_00 + R_11 - 2 R_01). We never form or invert R:
R = E^T E with E_m = (I - H^{m+1}) y / (sqrt(n) rho_m), so the constrained
minimum is the least-squares problem min ||E_0 + sum_{m>=1} c_m (E_m - E_0)||
(c_0 = 1 - sum c_m), solved for every k at once by one column-scaled
Householder QR (nested prefixes); near-dependent columns truncate the usable
k, and xi that do not reproduce the minimum are NaN.

Everything is O(p) per (lambda, m) in the U basis: (I - H^{m+1}) y has
coordinates (1 - r^{m+1}) U^T y in range(U), plus the part of y outside
range(U), which no smoother touches. 1 - r^{m+1} = q (1 + r + ... + r^m)
avoids cancellation at small lambda.

Intercept: with centering the smoother is H_tot = 11^T/n + H_c, and
H_tot^{m+1} = 11^T/n + H_c^{m+1}, so traces gain 1 and residuals are those of
the centered problem. Sample weights are frequency weights: residuals in the
sqrt(w)-scaled problem, n replaced by sum(w) (integer weights = repetitions).
Several targets share one c: their matrices R are averaged.

From c to xi: u_k = 1 - phi_k = sum_m c_m (1 - r^m) = q h(r) with
h_j = sum_{m > j} c_m, then :func:`fastsd.math.reparam.xi_from_h_coefficients`.

Conditioning and a caveat. The monomial smoothers H, H^2, ... are nearly
dependent when most r_j are close to 1 (lambda small against the spectrum):
the relative pivots of E_m - E_0 fall like powers of (1 - r). A smoother whose
pivot is below sqrt(eps) is dropped (R is then numerically singular, so
R^{-1} 1 is not defined in double precision), which truncates the usable k
(the row for k is then the k_eff-step solution preceded by reset steps).
Above that threshold the minimization can still use combinations with very
large c (hence very large xi) that exploit the O(1/n) approximation error of
the per-smoother GCV corrections: sum_m c_m / rho_m can be made ~0, cancelling
the part of y outside range(X), and the GCV estimate is then far too
optimistic. In simulations this makes k >= 2 (and k = 1 when n < d) less
reliable than ``loo``; see the SelfDistilledRidgeCV notes.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..reference.spectral import spectral_factors
from ._tuning import TuningTable, h_from_xi, nested_lstsq, reject_unreproducible, xi_from_rows

__all__ = ["gcv_table", "gcv_basis_residuals"]

#: 1 - tr H / n at or below this: GCV undefined (interpolation), risk = inf.
RHO_TOL = 1e-12
#: Relative pivot of the column-scaled differences E_m - E_0 below which a basis
#: smoother is dropped: there R = E^T E is numerically singular (cond(R) = cond(E)^2
#: > 1/eps), and the minimizing c would be rounding noise.
GCV_RCOND = float(np.sqrt(np.finfo(np.float64).eps))


def gcv_basis_residuals(
    U: NDArray[np.float64],
    s2: NDArray[np.float64],
    Y: NDArray[np.float64],
    w_sum: float,
    fit_intercept: bool,
    lams: NDArray[np.float64],
    max_steps: int,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The GCV-scaled residual vectors E_m of the basis smoothers H^{m+1}.

    Parameters
    ----------
    U : ndarray of shape (n, p)
        Left singular vectors of the prepared (centered, sqrt(w)-scaled)
        design, zero columns where ``s2 == 0``.
    s2 : ndarray of shape (p,)
    Y : ndarray of shape (n, T)
        Prepared targets.
    w_sum : float
        n, or the sum of the sample weights.
    fit_intercept : bool
    lams : ndarray of shape (L,)
    max_steps : int

    Returns
    -------
    E : ndarray of shape (L, N, K + 1)
        Column m is E_m (coordinates of (I - H^{m+1}) y / (rho_m sqrt(n T))
        over the T targets); R = E^T E.
    defined : ndarray of bool, shape (L,)
        rho_0 = 1 - tr H_tot / n > 0.
    """
    K = max_steps
    A = U.T @ Y  # (p, T)
    perp = np.sqrt(np.sum((Y - U @ A) ** 2, axis=0))  # (T,)
    r, q = spectral_factors(s2, lams)  # (L, p)
    rpow = r[:, None, :] ** np.arange(K + 1)[:, None]  # r^0..r^K, (L, K+1, p)
    one_minus = q[:, None, :] * np.cumsum(rpow, axis=1)  # 1 - r^{m+1}
    trace = float(fit_intercept) + np.sum(rpow * r[:, None, :], axis=-1)  # (L, K+1)
    rho = 1.0 - trace / w_sum
    defined = rho[:, 0] > RHO_TOL
    scale = np.where(
        defined[:, None],
        1.0 / (np.where(defined[:, None], rho, 1.0) * np.sqrt(w_sum * Y.shape[1])),
        0.0,
    )
    inside = one_minus[:, :, :, None] * A[None, None, :, :]  # (L, K+1, p, T)
    outside = np.broadcast_to(perp, (r.shape[0], K + 1, 1, Y.shape[1]))
    E = np.concatenate([inside, outside], axis=2) * scale[:, :, None, None]
    L = r.shape[0]
    return np.moveaxis(E.reshape(L, K + 1, -1), 1, 2), defined


def _risk_of_beta(E: NDArray[np.float64], beta: NDArray[np.float64]) -> NDArray[np.float64]:
    """||E_0 + sum_m beta_m (E_m - E_0)||^2 for beta of shape (L, J, K)."""
    E0 = E[:, :, 0]
    D = E[:, :, 1:] - E0[:, :, None]
    res: NDArray[np.float64] = E0[:, None, :] + np.einsum("lnk,ljk->ljn", D, beta)
    return cast("NDArray[np.float64]", np.sum(res * res, axis=-1))


def gcv_table(
    U: NDArray[np.float64],
    s2: NDArray[np.float64],
    Y: NDArray[np.float64],
    w_sum: float,
    fit_intercept: bool,
    lams: ArrayLike,
    max_steps: int,
) -> TuningTable:
    """GCV-estimated risks and optimal schedules for every lambda and k <= K.

    Parameters are those of :func:`gcv_basis_residuals`.

    Returns
    -------
    TuningTable
    """
    lams = np.asarray(lams, dtype=np.float64)
    K = max_steps
    E, defined = gcv_basis_residuals(U, s2, Y, w_sum, fit_intercept, lams, K)
    L = lams.size
    risk0 = np.where(defined, np.sum(E[:, :, 0] ** 2, axis=-1), np.inf)
    if K == 0:
        return TuningTable(
            lams, risk0[:, None], np.full((L, 1, 0), np.nan), np.isfinite(risk0)[:, None]
        )
    E0 = E[:, :, 0]
    D = E[:, :, 1:] - E0[:, :, None]
    beta = nested_lstsq(D, -E0, GCV_RCOND)  # (L, K, K): row k-1 = c_1..c_k
    risk_k = _risk_of_beta(E, beta)
    risk = np.concatenate([risk0[:, None], np.where(defined[:, None], risk_k, np.inf)], axis=1)

    # h_j = sum_{m > j} c_m  (m = 1..k)
    h_rows = np.flip(np.cumsum(np.flip(beta, axis=-1), axis=-1), axis=-1)
    xi = xi_from_rows(h_rows)  # (L, K+1, K)
    # forward recursion: xi -> h' -> c'_m = h'_{m-1} - h'_m, then the criterion
    beta_back = np.zeros((L, K + 1, K))
    for k in range(1, K + 1):
        hk = h_from_xi(np.nan_to_num(xi[:, k, :k]))
        beta_back[:, k, :k] = hk - np.concatenate([hk[:, 1:], np.zeros((L, 1))], axis=1)
    achieved = _risk_of_beta(E, beta_back)
    valid, xi = reject_unreproducible(xi, achieved, risk, risk0, s2, lams)
    return TuningTable(lams, risk, xi, valid)
