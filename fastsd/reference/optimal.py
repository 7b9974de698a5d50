r"""Optimal imitation parameters in closed form, accurate for large k (NumPy).

Every objective fastsd optimizes over a k-step schedule is a quadratic in the
filter u_k = 1 - phi_k, and u_k ranges over the polynomials q h(r) with
deg h <= k - 1 evaluated at the nodes (r_j, q_j) of the spectrum. Fitting
it in the monomial basis q^m is a Vandermonde least-squares problem whose
condition number explodes with k. Instead:

1. *Vandermonde with Arnoldi* on the discrete spectrum: an orthonormal basis
   b_1..b_K (weighted by the objective's own weights) of the nested spaces
   span{q, q x, ..., q x^(m-1)}, built by multiplying by x (x = q or r,
   whichever the weights put nearer 0, so that x is known to full relative
   accuracy), orthogonalized by a Lanczos pass (x is self-adjoint in the
   weighted inner product) and then fully re-orthogonalized. The basis for k
   is the first k columns of the basis for K, so one pass serves every k <= K.
2. The objective's design matrix applied to that basis, one Householder QR,
   and a back-substitution per k: nested least squares, residuals without
   cancellation.
3. The schedule xi is read off the r-coefficients of h, tracked alongside
   the basis: xi_{k-j} = h_j / h_{j-1}. That map is intrinsically
   ill-conditioned (the paper notes the optimal xi can be astronomically
   large), so each xi is checked by running the phi-form forward recursion
   (which loses ~eps ``|xi|`` to cancellation, like refitting on mixed targets)
   and recomputing the objective; where it does not reproduce the optimum to
   ``XI_RTOL`` it is reported as NaN (:func:`accept_schedules`).

When the spectrum has fewer than K distinct live nodes (or the design loses
rank) the Arnoldi process breaks down at k_eff; for k > k_eff the optimum is
that of k_eff, realised by k - k_eff leading reset steps (xi = 0) that leave
the teacher unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike

from .._config import BREAKDOWN_TOL, XI_RTOL
from .._typing import BoolArray, FloatArray
from ..math.filters import (
    polynomial_basis,
    products_of_filter,
    refit_step,
    schedule_reproducible,
    step_factors,
    step_space,
    xi_from_products,
)
from .spectral import eval_mse, inverse_shift, risk_from_u, risk_weights, spectral_factors

__all__ = [
    "XI_RTOL",
    "accept_schedules",
    "polynomial_basis",
    "nested_least_squares",
    "sweep_optimal",
    "optimal_validation",
]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _quiet(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Silence floating-point warnings: huge xi overflow by design, and the
    result is checked (non-reproducible schedules become NaN)."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return func(*args, **kwargs)

    return wrapper


def nested_least_squares(design: FloatArray, target: FloatArray, alive: BoolArray) -> FloatArray:
    """min ||design[..., :, :k] beta - target|| for every k = 1..K at once.

    Parameters
    ----------
    design : ndarray of shape (..., m, K)
    target : ndarray of shape (..., m)
    alive : ndarray of bool, shape (..., K)
        Columns usable so far; a column whose QR pivot is negligible ends the
        usable prefix too (coefficients 0 from there on).

    Returns
    -------
    beta : ndarray of shape (..., K, K)
        Row k - 1 holds the k-column solution (zeros past column k).
    """
    m_rows, K = design.shape[-2:]
    if m_rows < K:  # zero rows change no residual but make R square
        pad = design.shape[:-2] + (K - m_rows,)
        design = np.concatenate([design, np.zeros(pad + (K,))], axis=-2)
        target = np.concatenate([target, np.zeros(pad)], axis=-1)
    Q, R = np.linalg.qr(design)
    ct = np.einsum("...mk,...m->...k", Q, target)
    diag = np.abs(np.diagonal(R, axis1=-2, axis2=-1))
    top = np.max(diag, axis=-1, keepdims=True)
    ok = np.cumprod(alive & (diag > BREAKDOWN_TOL * top), axis=-1).astype(bool)
    safe_diag = np.where(ok, np.diagonal(R, axis1=-2, axis2=-1), 1.0)
    beta = np.zeros(design.shape[:-2] + (K, K))
    for k in range(1, K + 1):
        for m in range(k - 1, -1, -1):
            rest = np.einsum("...j,...j->...", R[..., m, m + 1 : k], beta[..., k - 1, m + 1 : k])
            beta[..., k - 1, m] = np.where(ok[..., m], (ct[..., m] - rest) / safe_diag[..., m], 0.0)
    return beta


def _schedules(beta: FloatArray, h: FloatArray) -> FloatArray:
    """xi for every k from the nested solutions; shape (..., K, K), NaN past k."""
    K = beta.shape[-1]
    coef = np.einsum("...km,...mj->...kj", beta, h)  # h^(k) coefficients
    xi = np.full(beta.shape, np.nan)
    for k in range(1, K + 1):
        xi[..., k - 1, :k] = xi_from_products(coef[..., k - 1, :k])
    return xi


def _u_of_schedules(r: FloatArray, xi: FloatArray) -> FloatArray:
    """u_k = 1 - phi_k on the nodes for each row of xi (..., K, K); shape (..., K, p).

    ``r`` of shape (..., p), or (..., S, p) per-step (step i uses row
    min(i - 1, S - 1), the factors of lam_{i-1}). Deliberately the phi-form
    recursion phi_i = xi_i r phi_{i-1} + 1 - xi_i, which cancels (error
    ~ eps |xi|) exactly as refitting on mixed targets does: a schedule is only
    reported if the literal procedure reproduces its risk.
    """
    rs = r if r.ndim == xi.ndim else r[..., None, :]
    S = rs.shape[-2]
    K = xi.shape[-1]
    u = np.zeros(xi.shape[:-1] + r.shape[-1:])
    for k in range(1, K + 1):
        phi = np.ones(rs.shape[:-2] + rs.shape[-1:])
        for i in range(k):
            phi = refit_step(phi, rs[..., min(i, S - 1), :], xi[..., k - 1, i, None])
        u[..., k - 1, :] = 1.0 - phi
    return u


def refit_amplification(s2: FloatArray, lams: FloatArray) -> FloatArray:
    """p * cond(X^T X + lam I) on the live directions, shape (..., L).

    Refitting on targets xi X theta + (1 - xi) y rounds them by ~eps |xi|
    (cancellation); the ridge solve then amplifies that by up to the condition
    number, spread over p directions.
    """
    if lams.ndim == 2:  # per-step penalties: the worst-conditioned step
        lams = lams.min(axis=-1)
    live = s2 > 0
    top = np.max(s2, axis=-1, keepdims=True)
    low = np.min(np.where(live, s2, np.inf), axis=-1, keepdims=True)
    low = np.where(np.isfinite(low), low, top)
    return cast(FloatArray, s2.shape[-1] * (top + lams) / (low + lams))


def accept_schedules(
    xi: FloatArray,
    achieved: FloatArray,
    optimum: FloatArray,
    k0: FloatArray,
    amplification: FloatArray,
) -> FloatArray:
    """NaN rows of xi that a literal refit could not be trusted to reproduce.

    The oracle and validation sweeps here and the estimators' tuning rules
    apply the one acceptance rule of fastsd,
    :func:`fastsd.math.filters.schedule_reproducible` (the Numba kernels the
    same rule, scalar by scalar), to every row. ``xi`` (..., K, K) has the
    k-step schedule in row k - 1; ``achieved`` and ``optimum`` (..., K) the
    objective replayed from xi and its minimum; ``k0`` (...) the k = 0
    objective; ``amplification`` broadcastable to (...)
    (:func:`refit_amplification`).
    """
    lower = np.tril(np.ones(xi.shape[-2:], dtype=bool))
    size = np.max(np.abs(np.where(lower, xi, 0.0)), axis=-1)  # NaN if an entry is NaN
    good = schedule_reproducible(
        achieved, optimum, np.abs(k0)[..., None], size, amplification[..., None]
    )
    return np.where(good[..., None] & lower, xi, np.nan)


@_quiet
def sweep_optimal(
    s2: FloatArray, t: FloatArray, noise_var: ArrayLike, n: int, lams: FloatArray, max_steps: int
) -> tuple[FloatArray, FloatArray]:
    """Oracle-optimal excess risk and xi for every lambda and k = 0..K.

    Parameters
    ----------
    s2, t : ndarray of shape (..., p)
    noise_var : float or ndarray of shape (...)
    n : int
    lams : ndarray of shape (L,), or (L, K + 1) per-step penalties lam_0..lam_K
    max_steps : int
        K >= 0.

    Returns
    -------
    risk : ndarray of shape (..., L, K + 1)
        k = 0 is ridge.
    xi : ndarray of shape (..., L, K, K)
        Row k - 1: the k-step optimal xi in its first k entries, NaN after
        (NaN throughout where xi cannot be recovered accurately).

    Notes
    -----
    The excess risk is sum_j a_j (phi_j - phi_j*)^2 + const, with
    a = w (r^2 t^2 + e), phi* = w r t^2 / a, w = s^2/n,
    e = sigma^2 s^2/(s^2 + lam)^2: a weighted least-squares fit of
    u* = 1 - phi* by u_k, done with :func:`polynomial_basis` weighted by a.
    With per-step penalties (``lams`` of shape (L, K + 1)) the fit is over
    the products pi instead, see :func:`sweep_optimal_steps`.
    """
    if lams.ndim == 2:
        return sweep_optimal_steps(s2, t, noise_var, n, lams, max_steps)
    r, q = spectral_factors(s2, lams)
    bias_w, noise_w = risk_weights(s2, t, noise_var, n, lams)
    ridge = risk_from_u(bias_w, noise_w, r, q, 0.0)
    if max_steps == 0:
        return ridge[..., None], np.zeros(r.shape[:-1] + (0, 0))
    a = r * r * bias_w + noise_w
    live = a > 0
    u_star = np.where(live, 1.0 - r * bias_w / np.where(live, a, 1.0), 0.0)

    basis, h, alive = polynomial_basis(r, q, a, max_steps)
    # the basis is a-orthonormal: the k-term fit is the first k projections
    alpha = np.where(alive, np.einsum("...mp,...p->...m", basis, a * u_star), 0.0)
    beta = alpha[..., None, :] * np.tril(np.ones((max_steps, max_steps)))
    u = np.einsum("...km,...mp->...kp", beta, basis)
    per_k = [x[..., None, :] for x in (bias_w, noise_w, r, q)]
    # per_k holds exactly the four weight arrays risk_from_u takes before u
    risk_k = risk_from_u(*per_k, u)  # type: ignore[call-arg]
    risk = np.concatenate([ridge[..., None], risk_k], axis=-1)

    xi = _schedules(beta, h)
    # per_k holds exactly the four weight arrays risk_from_u takes before u
    achieved = risk_from_u(  # type: ignore[call-arg]
        *per_k, _u_of_schedules(r, np.nan_to_num(xi, nan=0.0))
    )
    return risk, accept_schedules(xi, achieved, risk_k, ridge, refit_amplification(s2, lams))


@_quiet
def optimal_validation(
    s2: FloatArray,
    z: FloatArray,
    R: FloatArray,
    c: FloatArray,
    resid2: FloatArray,
    n_eval: int,
    lams: FloatArray,
    max_steps: int,
) -> tuple[FloatArray, FloatArray]:
    """Validation-MSE-optimal xi for every lambda and k = 0..K.

    Parameters
    ----------
    s2, z : ndarray of shape (..., p)
    R, c, resid2 : ndarray of shape (..., m, p), (..., m), (...)
        The validation set through :func:`fastsd.reference.spectral.eval_projection`.
    n_eval : int
    lams : ndarray of shape (L,), or (L, K + 1) per-step penalties
    max_steps : int

    Returns
    -------
    mse : ndarray of shape (..., L, K + 1)
        Validation mean squared error; k = 0 is ridge.
    xi : ndarray of shape (..., L, K, K)
        As in :func:`sweep_optimal`.

    Notes
    -----
    Predictions X_val theta_k = W ((1 - u_k) g) with W = X_val V = Q R and
    g = z/(s^2 + lam) are affine in u_k, so the MSE
    (resid2 + ||c - R((1 - u_k) g)||^2) / n_eval is quadratic: fit R diag(g) u_k
    to R g - c. Per-step penalties (``lams`` of shape (L, K + 1)): see
    :func:`optimal_validation_steps`.
    """
    if lams.ndim == 2:
        return optimal_validation_steps(s2, z, R, c, resid2, n_eval, lams, max_steps)
    r, q = spectral_factors(s2, lams)
    g = inverse_shift(s2, lams) * z[..., None, :]  # (..., L, p)
    ridge = eval_mse(R, c, resid2, n_eval, g)  # (..., L)
    if max_steps == 0:
        return ridge[..., None], np.zeros(r.shape[:-1] + (0, 0))
    col2 = np.sum(R * R, axis=-2)[..., None, :]
    basis, h, alive = polynomial_basis(r, q, g * g * col2, max_steps)
    Rl = R[..., None, :, :]  # (..., 1, m, p)
    design = Rl @ np.swapaxes(g[..., None, :] * basis, -1, -2)  # (..., L, m, K)
    target = np.einsum("...mp,...p->...m", Rl, g) - c[..., None, :]
    beta = nested_least_squares(design, target, alive)
    u = np.einsum("...km,...mp->...kp", beta, basis)

    def mse_of(uk: FloatArray) -> FloatArray:  # uk (..., L, K, p) -> (..., L, K)
        coef = (1.0 - uk) * g[..., None, :]
        flat = coef.reshape(coef.shape[:-3] + (-1, coef.shape[-1]))
        return eval_mse(R, c, resid2, n_eval, flat).reshape(coef.shape[:-1])

    mse_k = mse_of(u)
    xi = _schedules(beta, h)
    achieved = mse_of(_u_of_schedules(r, np.nan_to_num(xi, nan=0.0)))
    return np.concatenate([ridge[..., None], mse_k], axis=-1), accept_schedules(
        xi, achieved, mse_k, ridge, refit_amplification(s2, lams)
    )


# ------------------------------------------------------------ per-step penalties


def step_basis(
    s2: FloatArray,
    rs: FloatArray,
    qs: FloatArray,
    a_s: FloatArray,
    lams: FloatArray,
    k: int,
    weights: FloatArray,
) -> tuple[FloatArray, BoolArray]:
    """Weighted orthonormal basis of the k-step filters for per-step penalties.

    See :func:`fastsd.math.filters.step_space`: S_k = E_k P_{k_eff - 1}(x), built by
    Arnoldi in x from E_k.

    Returns
    -------
    basis : ndarray of shape (..., L, k, p)
        Orthonormal in ``weights``; zero rows past the dimension.
    alive : ndarray of bool, shape (..., L, k)
    """
    E, x, k_eff = step_space(s2, a_s, lams, k)
    basis, _, alive = polynomial_basis(np.broadcast_to(x, E.shape), E, weights, k, force_r=True)
    alive = alive & (np.arange(k) < k_eff[:, None])
    return np.where(alive[..., None], basis, 0.0), alive


def _products_fit(
    basis: FloatArray,
    alive: BoolArray,
    design: FloatArray,
    target: FloatArray,
    rs: FloatArray,
    qs: FloatArray,
    k: int,
    s2: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Least-squares fit over the k-step filters: u_k = beta basis; xi from the products."""
    beta = nested_least_squares(design, target, alive)[..., k - 1, :]
    u = np.einsum("...m,...mp->...p", beta, basis)
    live = np.broadcast_to((s2 > 0)[..., None, :], u.shape)
    return u, xi_from_products(products_of_filter(u, rs[..., :k, :], qs[..., :k, :], k, live))


@_quiet
def sweep_optimal_steps(
    s2: FloatArray, t: FloatArray, noise_var: ArrayLike, n: int, lams: FloatArray, max_steps: int
) -> tuple[FloatArray, FloatArray]:
    """:func:`sweep_optimal` for per-step penalties, ``lams`` of shape (L, K + 1).

    With a_i = 1/(s^2 + lam_i), u_k = sum_j pi_j g_j (see :mod:`fastsd.math.filters`)
    and the risk sum_j A_j (u_j - u*_j)^2 + const, A = r_k^2 w t^2 + w sigma^2 s^2 a_k^2,
    u* = 1 - r_k w t^2 / A (all with lam_k): for each k a weighted least-squares
    fit in an A-orthonormal basis of the k-step filters (:func:`step_basis`),
    then the products pi of the optimum and xi from them.
    """
    K = max_steps
    rs, qs, a_s = step_factors(s2, lams)  # (..., L, K + 1, p)
    w = (s2 / n)[..., None, None, :]
    sigma2 = np.asarray(noise_var, dtype=np.float64)[..., None, None, None]
    bias_w = w * (t * t)[..., None, None, :] * np.ones_like(a_s)
    noise_w = w * sigma2 * s2[..., None, None, :] * a_s * a_s
    ridge = risk_from_u(bias_w[..., 0, :], noise_w[..., 0, :], rs[..., 0, :], qs[..., 0, :], 0.0)
    xi = np.full(ridge.shape + (K, K), np.nan)
    if K == 0:
        return ridge[..., None], xi
    A = rs * rs * bias_w + noise_w
    live = A > 0
    u_star = np.where(live, 1.0 - rs * bias_w / np.where(live, A, 1.0), 0.0)
    risk = np.empty(ridge.shape + (K + 1,))
    risk[..., 0] = ridge
    for k in range(1, K + 1):
        root = np.sqrt(A[..., k, :])
        basis, alive = step_basis(s2, rs, qs, a_s, lams, k, A[..., k, :])
        u, xi[..., k - 1, :k] = _products_fit(
            basis,
            alive,
            root[..., :, None] * np.swapaxes(basis, -1, -2),
            root * u_star[..., k, :],
            rs,
            qs,
            k,
            s2,
        )
        risk[..., k] = risk_from_u(
            bias_w[..., k, :], noise_w[..., k, :], rs[..., k, :], qs[..., k, :], u
        )
    per_k = [x[..., 1:, :] for x in (bias_w, noise_w, rs, qs)]
    # per_k holds exactly the four weight arrays risk_from_u takes before u
    achieved = risk_from_u(  # type: ignore[call-arg]
        *per_k, _u_of_schedules(rs[..., :K, :], np.nan_to_num(xi, nan=0.0))
    )
    return risk, accept_schedules(xi, achieved, risk[..., 1:], ridge, refit_amplification(s2, lams))


@_quiet
def optimal_validation_steps(
    s2: FloatArray,
    z: FloatArray,
    R: FloatArray,
    c: FloatArray,
    resid2: FloatArray,
    n_eval: int,
    lams: FloatArray,
    max_steps: int,
) -> tuple[FloatArray, FloatArray]:
    """:func:`optimal_validation` for per-step penalties, ``lams`` of shape (L, K + 1).

    Predictions W (a_k (1 - u_k) z) are affine in u_k: fit R diag(a_k z) u_k to
    R (a_k z) - c over the k-step filters (:func:`step_basis`).
    """
    K = max_steps
    rs, qs, a_s = step_factors(s2, lams)  # (..., L, K + 1, p)
    gs = a_s * z[..., None, None, :]
    ridge = eval_mse(R, c, resid2, n_eval, gs[..., 0, :])
    xi = np.full(ridge.shape + (K, K), np.nan)
    if K == 0:
        return ridge[..., None], xi
    col2 = np.sum(R * R, axis=-2)[..., None, :]
    Rl = R[..., None, :, :]  # (..., 1, m, p)
    mse = np.empty(ridge.shape + (K + 1,))
    mse[..., 0] = ridge
    for k in range(1, K + 1):
        g = gs[..., k, :]
        basis, alive = step_basis(s2, rs, qs, a_s, lams, k, g * g * col2)
        u, xi[..., k - 1, :k] = _products_fit(
            basis,
            alive,
            Rl @ np.swapaxes(g[..., None, :] * basis, -1, -2),
            np.einsum("...mp,...p->...m", Rl, g) - c[..., None, :],
            rs,
            qs,
            k,
            s2,
        )
        mse[..., k] = eval_mse(R, c, resid2, n_eval, (1.0 - u) * g)
    u_fwd = _u_of_schedules(rs[..., :K, :], np.nan_to_num(xi, nan=0.0))  # (..., L, K, p)
    coef = (1.0 - u_fwd) * gs[..., 1:, :]
    flat = coef.reshape(coef.shape[:-3] + (-1, coef.shape[-1]))
    achieved = eval_mse(R, c, resid2, n_eval, flat).reshape(coef.shape[:-1])
    return mse, accept_schedules(xi, achieved, mse[..., 1:], ridge, refit_amplification(s2, lams))
