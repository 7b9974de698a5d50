r"""Population (random-design) excess risk given X: E_eps ||theta_k - theta*||^2_Sigma (NumPy).

With theta_k = V (c * z), c = a_k (1 - u_k) (see :mod:`fastsd.math.filters`),
t = V^T theta*, the part no estimator sees theta_perp = theta* - V t, and
S = V^T Sigma V, m = V^T Sigma theta_perp, kappa = theta_perp^T Sigma theta_perp:

    E theta_k - theta* = -V beta - theta_perp,   beta = (q_k + r_k u_k) * t,
    R = beta^T S beta + 2 beta^T m + kappa + sigma^2 sum_j c_j^2 s_j^2 S_jj,

O(p^2) per configuration once S, m, kappa are formed (one projection of
Sigma per problem). With Sigma = X^T X / n it is the fixed-design risk.

For the oracle xi the risk is a dense quadratic in u_k. With S = E^T E
(E = Lambda^{1/2} Q^T from S = Q Lambda Q^T) and m = E^T mu it is the
least-squares problem

    || [E diag(r t) B^T ; diag(sqrt(nu)) B^T] b - [-(E (q t) + mu) ; sqrt(nu)] ||^2
    + kappa - ||mu||^2

over the coefficients b of u_k in an orthonormal basis B (k x p) of the
k-step filters (nu = sigma^2 a_k^2 s^2 diag(S)): a small dense (2p x k) QR,
never the normal equations.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._typing import FloatArray
from ..math.filters import step_factors
from .optimal import (
    _products_fit,
    _quiet,
    _u_of_schedules,
    accept_schedules,
    refit_amplification,
    step_basis,
)
from .spectral import filter_state, iterate_filters, step_arrays

__all__ = ["cov_projection", "population_risk", "sweep_risk_population", "sweep_optimal_population"]


def cov_projection(
    V: FloatArray, theta_star: FloatArray, cov: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """S = V^T Sigma V, m = V^T Sigma theta_perp, kappa = theta_perp^T Sigma theta_perp.

    Parameters
    ----------
    V : ndarray of shape (..., d, p)
        Right singular vectors (zero columns where s = 0).
    theta_star : ndarray of shape (..., d)
    cov : ndarray of shape (..., d, d)

    Returns
    -------
    S : ndarray of shape (..., p, p)
    m : ndarray of shape (..., p)
    kappa : ndarray of shape (...)
    """
    t = np.einsum("...dp,...d->...p", V, theta_star)
    perp = theta_star - np.einsum("...dp,...p->...d", V, t)
    cov_V = cov @ V
    S = np.swapaxes(V, -1, -2) @ cov_V
    S = 0.5 * (S + np.swapaxes(S, -1, -2))
    m = np.einsum("...dp,...d->...p", cov_V, perp)
    kappa = np.einsum("...d,...de,...e->...", perp, cov, perp)
    return S, m, kappa


def _risk_of_u(
    S: FloatArray,
    m: FloatArray,
    kappa: FloatArray,
    noise_diag: FloatArray,
    r: FloatArray,
    q: FloatArray,
    a: FloatArray,
    t: FloatArray,
    u: FloatArray | float,
) -> FloatArray:
    """Population risk of u (B, ..., p) with factors r, q, a, t broadcast against it.

    ``S`` (B, p, p), ``m`` (B, p), ``kappa`` (B,) and ``noise_diag`` (B, p)
    carry the batch axis only; the axes of u between B and p are any.
    """
    beta = (q + r * u) * t
    c = (1.0 - u) * a
    shape = beta.shape
    flat = beta.reshape(shape[0], -1, shape[-1])
    quad: FloatArray = np.einsum("bni,bij,bnj->bn", flat, S, flat, optimize=True)
    lin: FloatArray = np.einsum("bni,bi->bn", flat, m)
    noise: FloatArray = np.einsum("bnp,bp->bn", (c * c).reshape(flat.shape), noise_diag)
    return (quad + 2.0 * lin + noise).reshape(shape[:-1]) + kappa.reshape(
        (-1,) + (1,) * (len(shape) - 2)
    )


def population_risk(
    s2: FloatArray,
    t: FloatArray,
    S: FloatArray,
    m: FloatArray,
    kappa: FloatArray,
    noise_var: ArrayLike,
    lams: FloatArray,
    xi: FloatArray,
) -> FloatArray:
    """E_eps ||theta_k - theta*||^2_Sigma for one schedule.

    Parameters
    ----------
    s2, t : ndarray of shape (..., p)
    S, m, kappa : from :func:`cov_projection`
    noise_var : float or ndarray of shape (...)
    lams : ndarray of shape (L,) or (L, k + 1)
    xi : ndarray broadcastable to (..., L, k)

    Returns
    -------
    risk : ndarray of shape (..., L)
    """
    r, q, a, u = filter_state(s2, lams, xi)
    return _risk_of_u(S, m, kappa, noise_diagonal(s2, S, noise_var), r, q, a, t[..., None, :], u)


def noise_diagonal(s2: FloatArray, S: FloatArray, noise_var: ArrayLike) -> FloatArray:
    """sigma^2 s^2 S_jj, the weights of the population noise term (c^2 times it).

    Parameters
    ----------
    s2 : ndarray of shape (B, p)
    S : ndarray of shape (B, p, p)
        From :func:`cov_projection`.
    noise_var : float or ndarray of shape (B,)

    Returns
    -------
    ndarray of shape (B, p)
    """
    var = np.asarray(noise_var, dtype=np.float64)[..., None]
    return var * s2 * np.diagonal(S, axis1=-2, axis2=-1)


def sweep_risk_population(
    s2: FloatArray,
    t: FloatArray,
    S: FloatArray,
    m: FloatArray,
    kappa: FloatArray,
    noise_var: ArrayLike,
    lams: FloatArray,
    schedules: FloatArray,
) -> FloatArray:
    """Population risk of every schedule after every k = 0..K steps.

    Parameters
    ----------
    s2, t : ndarray of shape (B, p)
    S, m, kappa : ndarray of shape (B, p, p), (B, p), (B,)
    noise_var : float or ndarray of shape (B,)
    lams : ndarray of shape (L,) or (L, K + 1)
    schedules : ndarray of shape (G, K)

    Returns
    -------
    risk : ndarray of shape (B, L, G, K + 1)
    """
    G, K = schedules.shape
    rs, qs, a_s = step_arrays(s2, lams, K)  # (B, L, S, p)
    noise_diag = noise_diagonal(s2, S, noise_var)  # (B, p)
    out = np.empty(rs.shape[:2] + (G, K + 1))
    tt = t[:, None, None, :]
    for k, i, u in iterate_filters(rs, qs, schedules):
        out[..., k] = _risk_of_u(
            S,
            m,
            kappa,
            noise_diag,
            rs[..., i, None, :],
            qs[..., i, None, :],
            a_s[..., i, None, :],
            tt,
            u,
        )
    return out


def _sqrt_form(S: FloatArray, m: FloatArray) -> tuple[FloatArray, FloatArray]:
    """E (p x p) and mu (p) with E^T E = S, E^T mu = m (S = Q Lambda Q^T, E = Lambda^{1/2} Q^T).

    Eigenvalues below p eps max(Lambda) are dropped (m lies in range(S) up
    to rounding: m = V^T Sigma theta_perp and Sigma is positive semidefinite).
    """
    ev, Q = np.linalg.eigh(S)
    cutoff = S.shape[-1] * np.finfo(np.float64).eps * np.max(np.abs(ev), axis=-1, keepdims=True)
    keep = ev > cutoff
    root = np.sqrt(np.where(keep, ev, 0.0))
    E = root[..., :, None] * np.swapaxes(Q, -1, -2)
    proj = np.einsum("...pi,...p->...i", Q, m)
    mu = np.where(keep, proj / np.where(keep, root, 1.0), 0.0)
    return E, mu


@_quiet
def sweep_optimal_population(
    s2: FloatArray,
    t: FloatArray,
    S: FloatArray,
    m: FloatArray,
    kappa: FloatArray,
    noise_var: ArrayLike,
    lams: FloatArray,
    max_steps: int,
) -> tuple[FloatArray, FloatArray]:
    """Population-risk-optimal xi and risk for every lambda and k = 0..K.

    Parameters
    ----------
    s2, t : ndarray of shape (B, p)
    S, m, kappa : from :func:`cov_projection`
    noise_var : float or ndarray of shape (B,)
    lams : ndarray of shape (L,) or (L, K + 1) per-step penalties
    max_steps : int

    Returns
    -------
    risk : ndarray of shape (B, L, K + 1)
    xi : ndarray of shape (B, L, K, K)
        As in :func:`fastsd.reference.sweep_optimal` (NaN where a literal
        refit could not be trusted to reproduce the optimum).
    """
    K = max_steps
    if lams.ndim == 1:
        lams = np.repeat(lams[:, None], K + 1, axis=1)
    rs, qs, a_s = step_factors(s2, lams)  # (B, L, K + 1, p)
    noise_diag = noise_diagonal(s2, S, noise_var)  # (B, p)
    tl = t[:, None, :]
    ridge = _risk_of_u(
        S,
        m,
        kappa,
        noise_diag,
        rs[..., 0, :],
        qs[..., 0, :],
        a_s[..., 0, :],
        tl,
        np.zeros(rs.shape[:2] + s2.shape[-1:]),
    )
    xi = np.full(ridge.shape + (K, K), np.nan)
    if K == 0:
        return ridge[..., None], xi
    E, mu = _sqrt_form(S, m)
    nd = noise_diag[:, None, :]
    diag_S = np.diagonal(S, axis1=-2, axis2=-1)[:, None, :]
    risk = np.empty(ridge.shape + (K + 1,))
    risk[..., 0] = ridge
    for k in range(1, K + 1):
        r, q, a = rs[..., k, :], qs[..., k, :], a_s[..., k, :]
        D = r * tl  # (B, L, p)
        root_nu = np.sqrt(a * a * nd)
        # basis orthonormal in the diagonal of the quadratic form
        basis, alive = step_basis(s2, rs, qs, a_s, lams, k, D * D * diag_S + root_nu**2)
        top = np.einsum("bij,blkj->blik", E, D[..., None, :] * basis)
        design = np.concatenate([top, root_nu[..., :, None] * np.swapaxes(basis, -1, -2)], axis=-2)
        target = np.concatenate(
            [-(np.einsum("bij,blj->bli", E, q * tl) + mu[:, None, :]), root_nu], axis=-1
        )
        u, xi[..., k - 1, :k] = _products_fit(basis, alive, design, target, rs, qs, k, s2)
        risk[..., k] = _risk_of_u(S, m, kappa, noise_diag, r, q, a, tl, u)
    u_fwd = _u_of_schedules(rs[..., :K, :], np.nan_to_num(xi, nan=0.0))  # (B, L, K, p)
    achieved = _risk_of_u(
        S,
        m,
        kappa,
        noise_diag,
        rs[..., 1:, :],
        qs[..., 1:, :],
        a_s[..., 1:, :],
        t[:, None, None, :],
        u_fwd,
    )
    return risk, accept_schedules(xi, achieved, risk[..., 1:], ridge, refit_amplification(s2, lams))
