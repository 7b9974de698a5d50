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

import numpy as np
from numpy.typing import ArrayLike

from .. import reference
from .._typing import FloatArray
from .._validation import (
    check_lams,
    check_noise_var,
    check_result_size,
    check_steps,
    check_xi,
)
from ..decomposition import Decomposition, as_decomposition, targets_projection
from ..decomposition.kernel import KernelDecomposition, unseen_target_risk
from ..exceptions import IllConditionedXiWarning, report_unrecoverable
from .inputs import batched, check_theta, eval_inputs, population_inputs, unbatch

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


def _with_students(lams: FloatArray, student_lams: ArrayLike | None, k: int) -> FloatArray:
    """lams (L,) unchanged when student_lams is None, else the penalty schedules
    (L, k + 1): lam_0 = lams, lam_1..lam_k = student_lams (a scalar: every student)."""
    if student_lams is None:
        return lams
    students, scalar = check_lams(student_lams, "student_lams", allow_empty=True)
    if not scalar and students.shape != (k,):
        raise ValueError(
            f"student_lams must be a scalar or have shape ({k},) (one penalty per student, "
            f"lam_1..lam_k), got {students.shape}; pass None to use lam for every step"
        )
    return np.concatenate([lams[:, None], np.broadcast_to(students, (lams.size, k))], axis=1)


def _renamed_step_lams(
    student_lams: ArrayLike | None, step_lams: ArrayLike | None
) -> ArrayLike | None:
    """The deprecated name ``step_lams`` of ``student_lams`` (a FutureWarning)."""
    if step_lams is None:
        return student_lams
    if student_lams is not None:
        raise TypeError("pass student_lams only (step_lams is its deprecated name)")
    warnings.warn(
        "step_lams is renamed student_lams (the same penalties lam_1..lam_k); "
        "step_lams will be removed in fastsd 0.3",
        FutureWarning,
        stacklevel=3,
    )
    return step_lams


def _squeeze_lam(arr: FloatArray, lam_is_scalar: bool, axis: int) -> FloatArray:
    return np.take(arr, 0, axis=axis) if lam_is_scalar else arr


def self_distill(
    X: ArrayLike | Decomposition,
    y: ArrayLike | None,
    lam: ArrayLike,
    xi: ArrayLike,
    *,
    student_lams: ArrayLike | None = None,
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
    student_lams : float or array_like of shape (k,), optional
        Penalties lam_1..lam_k of the students (``lam`` is the teacher's
        lam_0; a scalar is every student's); None: every step uses ``lam``.
        (``step_lams`` is its deprecated name.)

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
    student_lams = _renamed_step_lams(student_lams, step_lams)
    dec = as_decomposition(X)
    z = targets_projection(dec, y)
    lams, scalar = check_lams(lam)
    xi = _schedule(xi, _lead_shape(dec, scalar, lams.size), scalar)
    lams = _with_students(lams, student_lams, xi.shape[-1])
    theta = reference.self_distill_spectral(dec.V, dec.s2, z, lams, xi)
    return _squeeze_lam(theta, scalar, axis=-2)


def _risk_inputs(
    dec: Decomposition, theta_star: ArrayLike, noise_var: ArrayLike
) -> tuple[FloatArray, FloatArray, float | FloatArray]:
    """(t, sigma^2, unseen): ``unseen`` (0 or (B,) with a trailing axis for L) is the
    filter-independent risk of a kernel target outside range(K)."""
    theta = check_theta(dec, theta_star)
    t = dec.project_theta(theta, check=False)
    var = check_noise_var(noise_var, dec.batch_shape)
    unseen: float | FloatArray = 0.0
    if isinstance(dec, KernelDecomposition):
        unseen = unseen_target_risk(dec, theta)[..., None]
    return t, var, unseen


def _report_nan_xi(xi_k: FloatArray) -> None:
    """One IllConditionedXiWarning with the count of NaN schedules in xi_k (..., k)."""
    if xi_k.shape[-1]:
        first = xi_k[..., 0]
        report_unrecoverable(int(np.count_nonzero(np.isnan(first))), first.size, stacklevel=4)


def excess_risk(
    X: ArrayLike | Decomposition,
    theta_star: ArrayLike,
    noise_var: ArrayLike,
    lam: ArrayLike,
    xi: ArrayLike,
    *,
    student_lams: ArrayLike | None = None,
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
    student_lams : float or array_like of shape (k,), optional
        Students' penalties lam_1..lam_k (a scalar: every student's; None: all
        ``lam``; ``step_lams`` is its deprecated name).
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
    student_lams = _renamed_step_lams(student_lams, step_lams)
    dec, single = batched(X)
    if cov is not None:
        t, S, m, kappa, var = population_inputs(dec, theta_star, noise_var, cov)
        lams, scalar = check_lams(lam)
        xi = _schedule(xi, _lead_shape(dec, scalar, lams.size), scalar)
        lams = _with_students(lams, student_lams, xi.shape[-1])
        s2 = dec.s2.reshape(t.shape)
        risk = reference.population.population_risk(
            s2, t, S, m, kappa, var, lams, xi[None] if single else xi
        )
        return _squeeze_lam(unbatch(risk, single), scalar, axis=-1)
    t, var, unseen = _risk_inputs(dec, theta_star, noise_var)
    lams, scalar = check_lams(lam)
    xi = _schedule(xi, _lead_shape(dec, scalar, lams.size), scalar)
    lams = _with_students(lams, student_lams, xi.shape[-1])
    risk = reference.excess_risk_spectral(dec.s2, t, var, dec.n_samples, lams, xi) + unseen
    return _squeeze_lam(risk, scalar, axis=-1)


def optimal_xi(
    X: ArrayLike | Decomposition,
    theta_star: ArrayLike,
    noise_var: ArrayLike,
    lam: ArrayLike,
    k: int,
    *,
    student_lams: ArrayLike | None = None,
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
    student_lams : float or array_like of shape (k,), optional
        Students' penalties lam_1..lam_k (a scalar: every student's; None: all
        ``lam``; ``step_lams`` is its deprecated name). The risk is then
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
    student_lams = _renamed_step_lams(student_lams, step_lams)
    lams, scalar = check_lams(lam)
    k = check_steps(k)
    lams = _with_students(lams, student_lams, k)
    dec, single = batched(X)
    if cov is not None:
        check_result_size("optimal_xi", [dec.batch_shape + (lams.shape[0], k, k)])
        t, S, m, kappa, var = population_inputs(dec, theta_star, noise_var, cov)
        s2 = dec.s2.reshape(t.shape)
        risk, xi = reference.population.sweep_optimal_population(s2, t, S, m, kappa, var, lams, k)
        risk, xi = unbatch(risk, single), unbatch(xi, single)
    else:
        t, var, unseen = _risk_inputs(dec, theta_star, noise_var)
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
    dec = as_decomposition(X)
    t, var, unseen = _risk_inputs(dec, theta_star, noise_var)
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
    student_lams: ArrayLike | None = None,
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
    student_lams : float or array_like of shape (k,), optional
        Students' penalties lam_1..lam_k (a scalar: every student's; None: all
        ``lam``; ``step_lams`` is its deprecated name).

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
    student_lams = _renamed_step_lams(student_lams, step_lams)
    dec, single = batched(X)
    z = targets_projection(dec, y)
    R, c, resid2, n_val = eval_inputs(dec, X_val, y_val, ("X_val", "y_val"))
    lams, scalar = check_lams(lam)
    k = check_steps(k)
    check_result_size("optimal_xi_validation", [dec.batch_shape + (lams.size, k, k)])
    lams = _with_students(lams, student_lams, k)
    B = R.shape[0]
    mse, xi = reference.optimal_validation(
        dec.s2.reshape(B, -1), z.reshape(B, -1), R, c, resid2, n_val, lams, k
    )
    mse, xi = unbatch(mse, single), unbatch(xi, single)
    xi_k = xi[..., k - 1, :] if k else np.zeros(mse.shape[:-1] + (0,))
    _report_nan_xi(xi_k)
    return _squeeze_lam(xi_k, scalar, axis=-2), _squeeze_lam(mse[..., k], scalar, axis=-1)
