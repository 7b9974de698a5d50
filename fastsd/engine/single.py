r"""Public entry points for one schedule or one optimal schedule per lambda.

Every function accepts X of shape (n, d), a batch X of shape (B, n, d), or a
:class:`~fastsd.Decomposition` from :func:`fastsd.decompose` (reused, not
recomputed). ``lam`` may be a scalar or a 1-D array of L values; output axes are
always ordered ``(B, L, ...)``, each present only when the input has it.

With a kernel decomposition (:func:`fastsd.decompose_kernel`, or
``decompose(X, kernel=...)``) the same functions do kernel ridge:
``self_distill`` returns the dual coefficients alpha (n,), ``theta_star`` is
the vector of target values f* at the training points and the risk is the
in-sample E ||f_k - f*||^2 / n; evaluation sets are raw inputs (or
cross-kernel matrices K(X_eval, X_train) for a precomputed K).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from .. import reference
from .._typing import FloatArray
from .._validation import (
    as_float_array,
    check_lams,
    check_noise_var,
    check_result_size,
    check_steps,
    check_xi,
)
from ..decomposition import Decomposition, as_decomposition, targets_projection
from ..decomposition.kernel import KernelDecomposition, unseen_target_risk
from ..exceptions import IllConditionedXiWarning

__all__ = [
    "IllConditionedXiWarning",
    "excess_risk",
    "optimal_xi",
    "optimal_xi_validation",
    "oracle_risk",
    "self_distill",
]


def _lead_shape(dec: Decomposition, lam_is_scalar: bool, n_lams: int) -> tuple[int, ...]:
    return dec.batch_shape + (() if lam_is_scalar else (n_lams,))


def _schedule(xi: ArrayLike, out_lead: tuple[int, ...], lam_is_scalar: bool) -> FloatArray:
    """Broadcast xi (..., k) to out_lead + (k,), then give it an L axis."""
    xi = check_xi(xi)
    try:
        xi = np.broadcast_to(xi, out_lead + xi.shape[-1:])
    except ValueError:
        raise ValueError(
            f"xi must have shape (k,) or one broadcastable to {out_lead + ('k',)} "
            f"(one schedule per output entry), got {xi.shape}"
        ) from None
    return xi[..., None, :] if lam_is_scalar else xi


def _with_steps(
    lams: FloatArray, step_lams: ArrayLike | None, k: int, name: str = "step_lams"
) -> FloatArray:
    """lams (L,) unchanged when step_lams is None, else schedules (L, k + 1)
    [lam_0 = lams, lam_1..lam_k = step_lams]."""
    if step_lams is None:
        return lams
    steps = as_float_array(step_lams, name, ndim=1, allow_empty=True)
    if steps.shape != (k,):
        raise ValueError(
            f"{name} must have shape ({k},) (one penalty per student, lam_1..lam_k), "
            f"got {steps.shape}; pass None to use lam for every step"
        )
    if np.any(steps < 0):
        raise ValueError(f"{name} must be >= 0 (ridge penalties), got min {steps.min()!r}")
    return np.concatenate([lams[:, None], np.broadcast_to(steps, (lams.size, k))], axis=1)


def check_cov(cov: ArrayLike, dec: Decomposition, name: str = "cov") -> FloatArray:
    """Sigma of shape (d, d) or (B, d, d): finite, symmetric, positive semidefinite."""
    want = dec.batch_shape + (dec.n_features, dec.n_features)
    cov = as_float_array(cov, name, ndim=(2, 3))
    if cov.shape != want and cov.shape != want[-2:]:
        raise ValueError(
            f"{name} must have shape {want[-2:]} or {want} (the feature "
            f"covariance Sigma), got {cov.shape}"
        )
    scale = np.max(np.abs(cov), axis=(-2, -1), keepdims=True)
    tol = 1e3 * np.finfo(np.float64).eps * np.maximum(scale, np.finfo(np.float64).tiny)
    if np.any(np.abs(cov - np.swapaxes(cov, -1, -2)) > tol):
        raise ValueError(f"{name} must be symmetric; pass (cov + cov.T) / 2")
    low = np.linalg.eigvalsh(cov)[..., 0]
    if np.any(low < -cov.shape[-1] * 1e3 * np.finfo(np.float64).eps * scale[..., 0, 0]):
        raise ValueError(
            f"{name} must be positive semidefinite (a covariance), "
            f"got an eigenvalue {float(np.min(low))!r}"
        )
    return np.broadcast_to(cov, want)


def _population_inputs(
    dec: Decomposition, theta_star: ArrayLike, noise_var: ArrayLike, cov: ArrayLike
) -> tuple[bool, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """(single, s2, t, S, m, kappa, sigma^2) with a batch axis, for the population risk."""
    if isinstance(dec, KernelDecomposition):
        raise ValueError(
            "cov applies to feature-space decompositions; with a kernel "
            "decomposition the risk is the in-sample ||f_k - f*||^2/n (cov=None)"
        )
    cov = check_cov(cov, dec)
    theta = as_float_array(theta_star, "theta_star", ndim=(1, 2))
    dec.project_theta(theta)  # shape check with the usual message
    single = not dec.batched
    promote: Callable[[FloatArray], FloatArray] = (lambda a: a[None]) if single else (lambda a: a)
    S, m, kappa = reference.population.cov_projection(promote(dec.V), promote(theta), promote(cov))
    t = promote(dec.project_theta(theta))
    var = np.broadcast_to(check_noise_var(noise_var, dec.batch_shape), t.shape[:1])
    return single, promote(dec.s2), t, S, m, kappa, var


def _squeeze_lam(arr: FloatArray, lam_is_scalar: bool, axis: int) -> FloatArray:
    return np.take(arr, 0, axis=axis) if lam_is_scalar else arr


def self_distill(
    X: ArrayLike | Decomposition,
    y: ArrayLike | None,
    lam: ArrayLike,
    xi: ArrayLike,
    *,
    step_lams: ArrayLike | None = None,
) -> FloatArray:
    r"""k-step self-distilled ridge estimator theta_k.

    Parameters
    ----------
    X : array_like of shape (n, d) or (B, n, d), or Decomposition
    y : array_like of shape (n,) or (B, n), or None
        Targets; None reuses the ``y`` given to :func:`fastsd.decompose`.
    lam : float or array_like of shape (L,)
        Ridge penalty lambda >= 0 (0: minimum-norm least squares).
    xi : array_like of shape (k,)
        Imitation parameter of each step (any real value); ``[]`` is ridge.
        A leading shape broadcastable to (B, L) gives each output its own schedule.
    step_lams : array_like of shape (k,), optional
        Penalties lam_1..lam_k of the students (``lam`` is the teacher's
        lam_0); None: every step uses ``lam``.

    Returns
    -------
    theta : ndarray of shape ([B,] [L,] d)

    Notes
    -----
    theta_0 = (X^T X + lam I)^{-1} X^T y and
    theta_i = (X^T X + lam I)^{-1} X^T (xi_i X theta_{i-1} + (1 - xi_i) y), which is
    theta_k = V diag(phi_k / (s^2 + lam)) V^T X^T y with phi_0 = 1,
    phi_i = xi_i r phi_{i-1} + 1 - xi_i, r = s^2/(s^2 + lam). With per-step
    penalties the spectral coefficient follows
    c_i = xi_i r_i c_{i-1} + (1 - xi_i)/(s^2 + lam_i) (see :mod:`fastsd.math.filters`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    >>> fastsd.self_distill(X, y, 1.0, [0.5, 0.5]).shape
    (3,)
    >>> fastsd.self_distill(X, y, [0.1, 1.0, 10.0], []).shape
    (3, 3)
    """
    dec = as_decomposition(X)
    z = targets_projection(dec, y)
    lams, scalar = check_lams(lam)
    xi = _schedule(xi, _lead_shape(dec, scalar, lams.size), scalar)
    lams = _with_steps(lams, step_lams, xi.shape[-1])
    theta = reference.self_distill_spectral(dec.V, dec.s2, z, lams, xi)
    return _squeeze_lam(theta, scalar, axis=-2)


def _risk_inputs(
    X: ArrayLike | Decomposition, theta_star: ArrayLike, noise_var: ArrayLike
) -> tuple[Decomposition, FloatArray, FloatArray, float | FloatArray]:
    """(dec, t, sigma^2, unseen): ``unseen`` (0 or (B,) with a trailing axis for
    L) is the filter-independent risk of a kernel target outside range(K)."""
    dec = as_decomposition(X)
    t = dec.project_theta(theta_star)
    var = check_noise_var(noise_var, dec.batch_shape)
    unseen: float | FloatArray = 0.0
    if isinstance(dec, KernelDecomposition):
        unseen = unseen_target_risk(dec, theta_star)[..., None]
    return dec, t, var, unseen


def excess_risk(
    X: ArrayLike | Decomposition,
    theta_star: ArrayLike,
    noise_var: ArrayLike,
    lam: ArrayLike,
    xi: ArrayLike,
    *,
    step_lams: ArrayLike | None = None,
    cov: ArrayLike | None = None,
) -> FloatArray:
    r"""Fixed-design excess risk of k-step self-distillation.

    For y = X theta* + eps with E eps = 0, Cov eps = sigma^2 I:
    R = E ||theta_k - theta*||^2_{X^T X / n}.

    Parameters
    ----------
    X : array_like of shape (n, d) or (B, n, d), or Decomposition
    theta_star : array_like of shape (d,) or (B, d)
    noise_var : float or array_like of shape (B,)
        sigma^2 >= 0.
    lam : float or array_like of shape (L,)
    xi : array_like of shape (k,) (or broadcastable to (B, L, k))
    step_lams : array_like of shape (k,), optional
        Students' penalties lam_1..lam_k (None: all ``lam``).
    cov : array_like of shape (d, d) or (B, d, d), optional
        Feature covariance Sigma: return the population (random-design) risk
        E_eps ||theta_k - theta*||^2_Sigma given X instead, O(p^2) per entry
        after one projection V^T Sigma V (see :mod:`fastsd.reference.population`).

    Returns
    -------
    risk : float or ndarray of shape ([B,] [L])

    Notes
    -----
    With w = s^2/n, t = V^T theta*, q = lam/(s^2 + lam) and u_k = 1 - phi_k:
    R = sum_j w_j [ (q_j + r_j u_j)^2 t_j^2 + (1 - u_j)^2 sigma^2 s_j^2/(s_j^2 + lam)^2 ],
    O(d) per (lambda, xi) once the spectrum is known.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, theta = rng.normal(size=(40, 3)), np.ones(3)
    >>> float(fastsd.excess_risk(X, theta, 1.0, 0.0, [])) > 0
    True
    """
    if cov is not None:
        dec = as_decomposition(X)
        single, s2, t, S, m, kappa, var = _population_inputs(dec, theta_star, noise_var, cov)
        lams, scalar = check_lams(lam)
        xi = _schedule(xi, _lead_shape(dec, scalar, lams.size), scalar)
        lams = _with_steps(lams, step_lams, xi.shape[-1])
        risk = reference.population.population_risk(
            s2, t, S, m, kappa, var, lams, xi[None] if single else xi
        )
        return _squeeze_lam(risk[0] if single else risk, scalar, axis=-1)
    dec, t, var, unseen = _risk_inputs(X, theta_star, noise_var)
    lams, scalar = check_lams(lam)
    xi = _schedule(xi, _lead_shape(dec, scalar, lams.size), scalar)
    lams = _with_steps(lams, step_lams, xi.shape[-1])
    risk = reference.excess_risk_spectral(dec.s2, t, var, dec.n_samples, lams, xi) + unseen
    return _squeeze_lam(risk, scalar, axis=-1)


def _report_nan_xi(xi: FloatArray) -> None:
    if np.any(np.isnan(xi)):
        warnings.warn(
            "some optimal xi are too ill-conditioned to recover and are NaN; "
            "their risks are still exact",
            IllConditionedXiWarning,
            stacklevel=3,
        )


def optimal_xi(
    X: ArrayLike | Decomposition,
    theta_star: ArrayLike,
    noise_var: ArrayLike,
    lam: ArrayLike,
    k: int,
    *,
    step_lams: ArrayLike | None = None,
    cov: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    r"""Oracle-optimal k-step imitation parameters and their excess risk.

    Minimizes :func:`excess_risk` over xi in R^k, in closed form (the risk is
    a quadratic in xibar), with an orthogonal-polynomial basis on the spectrum
    so that it stays exact for large k.

    Parameters
    ----------
    X : array_like of shape (n, d) or (B, n, d), or Decomposition
    theta_star : array_like of shape (d,) or (B, d)
    noise_var : float or array_like of shape (B,)
    lam : float or array_like of shape (L,)
    k : int
        Number of steps, >= 0.
    step_lams : array_like of shape (k,), optional
        Students' penalties lam_1..lam_k (None: all ``lam``). The risk is then
        a quadratic in the products pi_j = xi_k ... xi_{k-j+1}, minimized in an
        orthonormal basis of the k-step filters.
    cov : array_like of shape (d, d) or (B, d, d), optional
        Feature covariance Sigma: minimize the population risk
        E_eps ||theta_k - theta*||^2_Sigma instead, a dense quadratic solved as a
        small (2p x k) least-squares problem by QR.

    Returns
    -------
    xi : ndarray of shape ([B,] [L,] k)
        NaN (with an :class:`IllConditionedXiWarning`) where the optimal xi
        cannot be recovered to relative accuracy ``fastsd.reference.XI_RTOL``
        in the risk it attains. When fewer than k distinct eigenvalues are
        live, the first steps are resets (xi = 0).
    risk : float or ndarray of shape ([B,] [L])
        The optimal excess risk; non-increasing in k, and for k at least the
        number of distinct nonzero eigenvalues equal to :func:`oracle_risk`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, theta = rng.normal(size=(40, 3)), np.ones(3)
    >>> xi, risk = fastsd.optimal_xi(X, theta, 1.0, 0.5, 2)
    >>> xi.shape, bool(risk <= fastsd.excess_risk(X, theta, 1.0, 0.5, []))
    ((2,), True)
    """
    lams, scalar = check_lams(lam)
    k = check_steps(k)
    lams = _with_steps(lams, step_lams, k)
    if cov is not None:
        dec = as_decomposition(X)
        check_result_size("optimal_xi", [dec.batch_shape + (lams.shape[0], k, k)])
        single, s2, t, S, m, kappa, var = _population_inputs(dec, theta_star, noise_var, cov)
        risk, xi = reference.population.sweep_optimal_population(s2, t, S, m, kappa, var, lams, k)
        risk, xi = (risk[0], xi[0]) if single else (risk, xi)
    else:
        dec, t, var, unseen = _risk_inputs(X, theta_star, noise_var)
        check_result_size("optimal_xi", [dec.batch_shape + (lams.shape[0], k, k)])
        risk, xi = reference.sweep_optimal(dec.s2, t, var, dec.n_samples, lams, k)
        risk = risk + np.asarray(unseen)[..., None]
    xi_k = xi[..., k - 1, :] if k else np.zeros(risk.shape[:-1] + (0,))
    _report_nan_xi(xi_k)
    return _squeeze_lam(xi_k, scalar, axis=-2), _squeeze_lam(risk[..., k], scalar, axis=-1)


def oracle_risk(
    X: ArrayLike | Decomposition, theta_star: ArrayLike, noise_var: ArrayLike, lam: ArrayLike
) -> FloatArray:
    r"""Excess risk of the best spectral filter (the k -> infinity limit of SD).

    Parameters
    ----------
    X, theta_star, noise_var, lam
        As in :func:`excess_risk`.

    Returns
    -------
    risk : float or ndarray of shape ([B,] [L])

    Notes
    -----
    Per eigen-direction the best filter is phi* = b/a with
    a = w (r^2 t^2 + e), b = w r t^2, e = sigma^2 s^2/(s^2 + lam)^2; directions
    sharing an eigenvalue share one filter value.
    """
    dec, t, var, unseen = _risk_inputs(X, theta_star, noise_var)
    lams, scalar = check_lams(lam)
    risk = reference.oracle_risk(dec.s2, t, var, dec.n_samples, lams) + unseen
    return _squeeze_lam(risk, scalar, axis=-1)


def optimal_xi_validation(
    X: ArrayLike | Decomposition,
    y: ArrayLike | None,
    X_val: ArrayLike,
    y_val: ArrayLike,
    lam: ArrayLike,
    k: int,
    *,
    step_lams: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    r"""Imitation parameters minimizing the validation MSE, in closed form.

    Parameters
    ----------
    X : array_like of shape (n, d) or (B, n, d), or Decomposition
    y : array_like of shape (n,) or (B, n), or None (reuse the decomposition's y)
    X_val : array_like of shape (n_val, d) or (B, n_val, d)
    y_val : array_like of shape (n_val,) or (B, n_val)
    lam : float or array_like of shape (L,)
    k : int
    step_lams : array_like of shape (k,), optional
        Students' penalties lam_1..lam_k (None: all ``lam``).

    Returns
    -------
    xi : ndarray of shape ([B,] [L,] k)
        NaN where ill-conditioned, as in :func:`optimal_xi`.
    val_mse : float or ndarray of shape ([B,] [L])
        mean((y_val - X_val theta_k)^2) at that xi.

    Notes
    -----
    X_val theta_k = W ((1 - u_k) z/(s^2 + lam)) with W = X_val V is affine in
    xibar, so the validation MSE is quadratic in xibar: no grid search.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, Xv = rng.normal(size=(40, 3)), rng.normal(size=(20, 3))
    >>> y, yv = X @ np.ones(3) + rng.normal(size=40), Xv @ np.ones(3)
    >>> xi, mse = fastsd.optimal_xi_validation(X, y, Xv, yv, 1.0, 1)
    >>> xi.shape
    (1,)
    """
    dec = as_decomposition(X)
    z = targets_projection(dec, y)
    X_val = as_float_array(X_val, "X_val", ndim=(2, 3))
    want = dec.batch_shape + (dec.eval_width,)
    if X_val.shape[:-2] + X_val.shape[-1:] != want:
        raise ValueError(
            f"X_val must have shape {dec.batch_shape + ('n_val', dec.eval_width)} "
            f"(same batch and features as X), got {X_val.shape}"
        )
    y_val = as_float_array(y_val, "y_val", ndim=(1, 2))
    if y_val.shape != X_val.shape[:-1]:
        raise ValueError(
            f"y_val must have shape {X_val.shape[:-1]} to match X_val, got {y_val.shape}"
        )
    lams, scalar = check_lams(lam)
    k = check_steps(k)
    check_result_size("optimal_xi_validation", [dec.batch_shape + (lams.size, k, k)])
    lams = _with_steps(lams, step_lams, k)
    R, c, resid2 = reference.eval_projection(dec.eval_basis(X_val), y_val)
    mse, xi = reference.optimal_validation(dec.s2, z, R, c, resid2, y_val.shape[-1], lams, k)
    xi_k = xi[..., k - 1, :] if k else np.zeros(mse.shape[:-1] + (0,))
    _report_nan_xi(xi_k)
    return _squeeze_lam(xi_k, scalar, axis=-2), _squeeze_lam(mse[..., k], scalar, axis=-1)
