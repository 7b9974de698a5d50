r"""Batched sweeps over lambda, xi schedules and step counts, on two backends.

``backend="numba"`` runs the parallel kernels of :mod:`fastsd.kernels`;
``backend="numpy"`` runs the vectorized reference (:mod:`fastsd.reference`).
Both give the same numbers (to ~1e-12 relative) whatever the thread count.

Axis order of every result: ``(B, L, G, K + 1)`` -- problem, lambda, schedule,
number of steps k = 0..K (k = 0 is ridge). A single problem X of shape (n, d)
drops the B axis.
"""

from __future__ import annotations

import warnings
from typing import Any

import numba
import numpy as np
from numpy.typing import ArrayLike

from .. import reference
from .._config import BACKENDS
from .._jit import call, check_threads, single_threaded_blas
from .._jit import threads as thread_count
from .._typing import FloatArray
from .._validation import (
    as_float_array,
    check_lams,
    check_noise_var,
    check_result_size,
    check_steps,
)
from ..decomposition import Decomposition, as_decomposition, targets_projection
from ..decomposition.streamed import eval_projection, is_streamed
from ..exceptions import IllConditionedXiWarning
from ..kernels import optimal as optimal_kernels
from ..kernels import sweep as sweep_kernels
from .single import _population_inputs

__all__ = [
    "sweep_risk",
    "sweep_optimal",
    "sweep_mse",
    "sweep_optimal_validation",
]


def _check_backend(backend: str, threads: int | None = None) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    check_threads(threads)


def _check_grid(lams: ArrayLike) -> FloatArray:
    lams, _ = check_lams(lams, "lams")
    return lams


def check_schedules(xis: ArrayLike, max_steps: int) -> FloatArray:
    """xi grid (G,) of constant schedules, or explicit schedules (G, K) -> (G, K)."""
    K = check_steps(max_steps, "max_steps")
    xis = as_float_array(xis, "xis", ndim=(1, 2), allow_empty=True)
    if xis.shape[0] == 0:
        raise ValueError(f"xis is empty (shape {xis.shape}); pass at least one schedule")
    if xis.ndim == 1:
        check_result_size("the xi schedules", [(xis.shape[0], K)])
        return np.repeat(xis[:, None], K, axis=1)
    if xis.shape[1] != K:
        raise ValueError(
            f"xis of shape (G, K) must have K = max_steps = {K} columns, got {xis.shape}"
        )
    return xis


def warn_unrecoverable(xi: FloatArray, stacklevel: int = 3) -> int:
    """One IllConditionedXiWarning with the count of NaN k-step schedules in xi (..., K, K).

    Returns the count.
    """
    if xi.shape[-1] == 0:
        return 0
    # row k - 1 holds the k-step schedule; its first entry is NaN iff it is unrecoverable
    first = xi[..., 0]
    return report_unrecoverable(int(np.count_nonzero(np.isnan(first))), first.size, stacklevel + 1)


def report_unrecoverable(count: int, total: int, stacklevel: int = 3) -> int:
    """Warn once (IllConditionedXiWarning) that ``count`` of ``total`` schedules are NaN."""
    if count:
        warnings.warn(
            f"{count} of {total} optimal xi schedules are too ill-conditioned to recover "
            "and are NaN; their risks/MSEs are still exact",
            IllConditionedXiWarning,
            stacklevel=stacklevel,
        )
    return count


def _check_fixed_size(func: str, B: int, L: int, xis: ArrayLike, max_steps: int) -> None:
    """Refuse a (B, L, G, K + 1) result over the limit before building the schedules."""
    K = check_steps(max_steps, "max_steps")
    G = np.shape(xis)[0] if np.ndim(xis) else 1
    check_result_size(func, [(B, L, G, K + 1)])


def _chunks(pairs: int) -> int:
    """Parallel work units: enough per thread to balance the load."""
    return max(1, min(pairs, 16 * numba.get_num_threads()))


def _per_problem(noise_var: ArrayLike, B: int) -> FloatArray:
    """sigma^2 as a fresh writable (B,) array (one compiled kernel signature)."""
    return np.array(np.broadcast_to(noise_var, (B,)), dtype=np.float64)


def _oracle_inputs(
    X: ArrayLike | Decomposition, theta_star: ArrayLike, noise_var: ArrayLike
) -> tuple[bool, FloatArray, FloatArray, FloatArray, int]:
    """(single, s2 (B, p), t (B, p), sigma^2 (B,), n) for the oracle sweeps."""
    dec = as_decomposition(X)
    single = not dec.batched
    t = _promote(dec.project_theta(theta_star), single)
    s2 = _promote(dec.s2, single)
    var = _per_problem(check_noise_var(noise_var, dec.batch_shape), s2.shape[0])
    return single, s2, t, var, dec.n_samples


def _lam_grid(
    lams: ArrayLike, student_lams: ArrayLike | None, max_steps: int
) -> tuple[FloatArray, tuple[int, ...]]:
    """(lam rows (P, S), grid shape): S = 1 without student_lams, else the
    teacher x student schedules (lam_t, lam_s, ..., lam_s) of K + 1 penalties."""
    lams = _check_grid(lams)
    if student_lams is None:
        return lams[:, None], (lams.size,)
    students, _ = check_lams(student_lams, "student_lams")
    check_result_size("the penalty schedules", [(lams.size * students.size, max_steps + 1)])
    rows = np.empty((lams.size, students.size, max_steps + 1))
    rows[..., 0] = lams[:, None]
    rows[..., 1:] = students[None, :, None]
    return rows.reshape(-1, max_steps + 1), (lams.size, students.size)


def _reference_lams(rows: FloatArray) -> FloatArray:
    """The reference's lams argument: (L,) for one penalty per row, else (P, K + 1)."""
    return rows[:, 0] if rows.shape[1] == 1 else rows


def _population(
    X: ArrayLike | Decomposition,
    theta_star: ArrayLike,
    noise_var: ArrayLike,
    cov: ArrayLike,
    backend: str,
    what: str | None = "cov in sweep_optimal",
) -> tuple[bool, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Population-risk inputs (see :mod:`fastsd.reference.population`)."""
    if backend != "numpy" and what:
        raise ValueError(
            f"{what} (population risk) runs on the NumPy reference only "
            "(no Numba kernel yet); pass backend='numpy'"
        )

    return _population_inputs(as_decomposition(X), theta_star, noise_var, cov)


def _promote(arr: FloatArray, single: bool) -> FloatArray:
    return arr[None] if single else arr


def _unpromote(arr: FloatArray, single: bool) -> FloatArray:
    return arr[0] if single else arr


def sweep_risk(
    X: ArrayLike | Decomposition,
    theta_star: ArrayLike,
    noise_var: ArrayLike,
    lams: ArrayLike,
    xis: ArrayLike,
    max_steps: int,
    *,
    student_lams: ArrayLike | None = None,
    cov: ArrayLike | None = None,
    backend: str = "numba",
    threads: int | None = None,
) -> FloatArray:
    r"""Excess risk for a grid of lambdas and xi schedules, every k = 0..K.

    Parameters
    ----------
    X : array_like of shape (B, n, d) or (n, d), or Decomposition
    theta_star : array_like of shape (B, d) or (d,)
    noise_var : float or array_like of shape (B,)
    lams : array_like of shape (L,)
        Ridge penalties, >= 0.
    xis : array_like of shape (G,) or (G, K)
        Constant schedules xi_i = xis[g], or explicit schedules (row g holds
        xi_1..xi_K; k steps use its first k entries).
    max_steps : int
        K >= 0.
    student_lams : array_like of shape (M,), optional
        Students' penalties: ``lams`` are then the teacher's lam_0 and every
        student step uses lam_s = student_lams[m] (a teacher x student grid).
    cov : array_like of shape (d, d) or (B, d, d), optional
        Feature covariance Sigma: population risk E_eps ||theta_k - theta*||^2_Sigma
        instead (O(p^2) per cell).
    backend : {"numba", "numpy"}, default="numba"
    threads : int, optional
        Numba threads for this call (restored afterwards).

    Returns
    -------
    risk : ndarray of shape (B, L, G, K + 1), or (B, L, M, G, K + 1) with student_lams

    Notes
    -----
    One cell (problem, lambda, schedule, k, direction) costs ~8 flops:
    u <- xi (q + r u) and w t^2 (q + r u)^2 + w e (1 - u)^2.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, theta = rng.normal(size=(4, 30, 5)), rng.normal(size=(4, 5))
    >>> fastsd.sweep_risk(X, theta, 1.0, np.logspace(-2, 2, 7), [0.0, 0.5, 1.5], 3).shape
    (4, 7, 3, 4)
    """
    _check_backend(backend, threads)
    K = check_steps(max_steps, "max_steps")
    rows, grid = _lam_grid(lams, student_lams, K)
    if cov is not None:
        single, s2, t, S, m, kappa, var = _population(
            X, theta_star, noise_var, cov, backend, what=None
        )
    else:
        single, s2, t, var, n = _oracle_inputs(X, theta_star, noise_var)
    _check_fixed_size("sweep_risk", s2.shape[0], rows.shape[0], xis, K)
    schedules = check_schedules(xis, K)
    if cov is not None:
        if backend == "numpy":
            out = reference.population.sweep_risk_population(
                s2, t, S, m, kappa, var, _reference_lams(rows), schedules
            )
        else:
            out = np.empty((s2.shape[0], rows.shape[0], schedules.shape[0], schedules.shape[1] + 1))
            noise_diag = (
                _per_problem(var, s2.shape[0])[:, None] * s2 * np.diagonal(S, axis1=-2, axis2=-1)
            )
            with thread_count(threads):
                call(
                    sweep_kernels.sweep_risk_population,
                    s2,
                    t,
                    np.ascontiguousarray(S),
                    m,
                    np.ascontiguousarray(kappa, dtype=np.float64),
                    noise_diag,
                    rows,
                    schedules,
                    out,
                    _chunks(s2.shape[0] * rows.shape[0]),
                )
        return _unpromote(out.reshape(out.shape[:1] + grid + out.shape[2:]), single)
    single, s2, t, var, n = _oracle_inputs(X, theta_star, noise_var)
    if backend == "numpy":
        out = reference.sweep_risk(s2, t, var, n, _reference_lams(rows), schedules)
    else:
        out = np.empty((s2.shape[0], rows.shape[0], schedules.shape[0], schedules.shape[1] + 1))
        with thread_count(threads):
            call(
                sweep_kernels.sweep_risk,
                s2,
                t * t,
                var,
                n,
                rows,
                schedules,
                out,
                _chunks(s2.shape[0] * rows.shape[0]),
            )
    return _unpromote(out.reshape(out.shape[:1] + grid + out.shape[2:]), single)


def sweep_optimal(
    X: ArrayLike | Decomposition,
    theta_star: ArrayLike,
    noise_var: ArrayLike,
    lams: ArrayLike,
    max_steps: int,
    *,
    student_lams: ArrayLike | None = None,
    cov: ArrayLike | None = None,
    backend: str = "numba",
    threads: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    r"""Oracle-optimal xi and excess risk for every lambda and every k = 1..K.

    Parameters
    ----------
    X : array_like of shape (B, n, d) or (n, d), or Decomposition
    theta_star : array_like of shape (B, d) or (d,)
    noise_var : float or array_like of shape (B,)
    lams : array_like of shape (L,)
    max_steps : int
        K >= 0.
    student_lams : array_like of shape (M,), optional
        Teacher x student grid as in :func:`sweep_risk` (adds an M axis after L).
    cov : array_like of shape (d, d) or (B, d, d), optional
        Feature covariance: minimize the population risk instead (needs
        ``backend="numpy"``).
    backend : {"numba", "numpy"}, default="numba"
    threads : int, optional

    Returns
    -------
    risk : ndarray of shape (B, L, K + 1)
        Optimal excess risk with k steps (k = 0: ridge); non-increasing in k
        for one penalty (with student_lams the teacher's lam_0 is fixed while
        k changes which penalty the last step uses, so no such order holds).
    xi : ndarray of shape (B, L, K, K)
        Row k - 1 holds the optimal k-step xi in its first k entries, NaN after
        it; NaN throughout where xi cannot be recovered to
        ``fastsd.reference.XI_RTOL`` (see :func:`fastsd.optimal_xi`).

    Notes
    -----
    One weighted Arnoldi factorization of the spectrum per (problem, lambda)
    serves every k <= K: the basis for k is a prefix of the basis for K.
    """
    _check_backend(backend, threads)
    K = check_steps(max_steps, "max_steps")
    rows, grid = _lam_grid(lams, student_lams, K)
    if cov is not None:
        single, s2, t, S, m, kappa, var = _population(X, theta_star, noise_var, cov, backend)
    else:
        single, s2, t, var, n = _oracle_inputs(X, theta_star, noise_var)
    P = rows.shape[0]
    check_result_size("sweep_optimal", [(s2.shape[0], P, K + 1), (s2.shape[0], P, K, K)])
    if cov is not None:
        risk, xi = reference.population.sweep_optimal_population(
            s2, t, S, m, kappa, var, _reference_lams(rows), K
        )
    elif backend == "numpy":
        risk, xi = reference.sweep_optimal(s2, t, var, n, _reference_lams(rows), K)
    else:
        risk = np.empty((s2.shape[0], P, K + 1))
        xi = np.full((s2.shape[0], P, K, K), np.nan)
        if student_lams is not None:
            with thread_count(threads), single_threaded_blas():
                call(
                    optimal_kernels.sweep_optimal_steps,
                    s2,
                    t * t,
                    var,
                    n,
                    rows,
                    risk,
                    xi,
                    _chunks(s2.shape[0] * P),
                )
        else:
            with thread_count(threads):
                call(
                    optimal_kernels.sweep_optimal,
                    s2,
                    t * t,
                    var,
                    n,
                    np.ascontiguousarray(rows[:, 0]),
                    risk,
                    xi,
                    _chunks(s2.shape[0] * P),
                )
    warn_unrecoverable(xi)
    return (
        _unpromote(risk.reshape(risk.shape[:1] + grid + risk.shape[2:]), single),
        _unpromote(xi.reshape(xi.shape[:1] + grid + xi.shape[2:]), single),
    )


def _eval_inputs(
    X: ArrayLike | Decomposition,
    y: ArrayLike | None,
    X_eval: Any,
    y_eval: ArrayLike,
    names: tuple[str, str],
) -> tuple[Decomposition, bool, FloatArray, FloatArray, FloatArray, FloatArray, int]:
    """Decomposition, z and the compressed evaluation set, all with a batch axis."""
    dec = as_decomposition(X)
    single = not dec.batched
    z = _promote(targets_projection(dec, y), single)
    if is_streamed(X_eval) and single:  # larger than memory: QR updated block by block
        R, c, resid2_one, n_eval = eval_projection(X_eval, y_eval, dec.V, names=names)
        return dec, single, z, R[None], c[None], np.array([resid2_one]), n_eval
    X_eval = as_float_array(X_eval, names[0], ndim=(2, 3))
    if X_eval.shape[:-2] + X_eval.shape[-1:] != dec.batch_shape + (dec.eval_width,):
        raise ValueError(
            f"{names[0]} must have shape {dec.batch_shape + ('n_eval', dec.eval_width)} "
            f"(same batch and features as X), got {X_eval.shape}"
        )
    y_eval = as_float_array(y_eval, names[1], ndim=(1, 2))
    if y_eval.shape != X_eval.shape[:-1]:
        raise ValueError(
            f"{names[1]} must have shape {X_eval.shape[:-1]} to match {names[0]}, "
            f"got {y_eval.shape}"
        )
    R, c, resid2 = reference.eval_projection(
        _promote(dec.eval_basis(X_eval), single), _promote(y_eval, single)
    )
    return dec, single, z, R, c, resid2, y_eval.shape[-1]


def sweep_mse(
    X: ArrayLike | Decomposition,
    y: ArrayLike | None,
    X_eval: Any,
    y_eval: ArrayLike,
    lams: ArrayLike,
    xis: ArrayLike,
    max_steps: int,
    *,
    student_lams: ArrayLike | None = None,
    backend: str = "numba",
    threads: int | None = None,
) -> FloatArray:
    r"""Mean squared error on an evaluation set for a grid of lambdas and schedules.

    Parameters
    ----------
    X : array_like of shape (B, n, d) or (n, d), or Decomposition
    y : array_like of shape (B, n) or (n,), or None (reuse the decomposition's y)
    X_eval : array_like of shape (B, n_eval, d) or (n_eval, d)
        For one problem also streamed (a .npy path, memmap, Zarr or Dask
        array, iterator of row blocks; y_eval in any form): read once, in
        O(p^2 + block) memory (:func:`fastsd.decomposition.streamed.eval_projection`).
    y_eval : array_like of shape (B, n_eval) or (n_eval,)
    lams, xis, max_steps, student_lams, backend, threads
        As in :func:`sweep_risk`.

    Returns
    -------
    mse : ndarray of shape (B, L, G, K + 1) (or (B, L, M, G, K + 1))
        mean((y_eval - X_eval theta_k)^2).

    Notes
    -----
    The evaluation set enters through a thin QR of X_eval V = Q R: the MSE is
    (||y_eval - Q Q^T y_eval||^2 + ||Q^T y_eval - R phi g||^2) / n_eval with
    g = z/(s^2 + lam), O(min(n_eval, p) p) per cell and free of cancellation.
    """
    _check_backend(backend, threads)
    dec, single, z, R, c, resid2, n_eval = _eval_inputs(X, y, X_eval, y_eval, ("X_eval", "y_eval"))
    s2 = _promote(dec.s2, single)
    K = check_steps(max_steps, "max_steps")
    rows, grid = _lam_grid(lams, student_lams, K)
    _check_fixed_size("sweep_mse", s2.shape[0], rows.shape[0], xis, K)
    schedules = check_schedules(xis, K)
    if backend == "numpy":
        out = reference.sweep_mse(s2, z, R, c, resid2, n_eval, _reference_lams(rows), schedules)
    else:
        out = np.empty((s2.shape[0], rows.shape[0], schedules.shape[0], schedules.shape[1] + 1))
        with thread_count(threads), single_threaded_blas():
            call(
                sweep_kernels.sweep_mse,
                s2,
                z,
                np.ascontiguousarray(R),
                c,
                resid2,
                n_eval,
                rows,
                schedules,
                out,
                _chunks(s2.shape[0] * rows.shape[0]),
            )
    return _unpromote(out.reshape(out.shape[:1] + grid + out.shape[2:]), single)


def sweep_optimal_validation(
    X: ArrayLike | Decomposition,
    y: ArrayLike | None,
    X_val: Any,
    y_val: ArrayLike,
    lams: ArrayLike,
    max_steps: int,
    *,
    student_lams: ArrayLike | None = None,
    backend: str = "numba",
    threads: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    r"""Validation-optimal xi and validation MSE for every lambda and k = 1..K.

    Parameters
    ----------
    X : array_like of shape (B, n, d) or (n, d), or Decomposition
    y : array_like of shape (B, n) or (n,), or None
    X_val : array_like of shape (B, n_val, d) or (n_val, d)
        For one problem also streamed, as ``X_eval`` in :func:`sweep_mse`.
    y_val : array_like of shape (B, n_val) or (n_val,)
    lams, max_steps, student_lams, backend, threads
        As in :func:`sweep_optimal`.

    Returns
    -------
    val_mse : ndarray of shape (B, L, K + 1)
    xi : ndarray of shape (B, L, K, K)
        Layout as in :func:`sweep_optimal`.
    """
    _check_backend(backend, threads)
    dec, single, z, R, c, resid2, n_val = _eval_inputs(X, y, X_val, y_val, ("X_val", "y_val"))
    s2 = _promote(dec.s2, single)
    K = check_steps(max_steps, "max_steps")
    rows, grid = _lam_grid(lams, student_lams, K)
    P = rows.shape[0]
    check_result_size("sweep_optimal_validation", [(s2.shape[0], P, K + 1), (s2.shape[0], P, K, K)])
    if backend == "numpy":
        mse, xi = reference.optimal_validation(s2, z, R, c, resid2, n_val, _reference_lams(rows), K)
    else:
        mse = np.empty((s2.shape[0], P, K + 1))
        xi = np.full((s2.shape[0], P, K, K), np.nan)
        if student_lams is not None:
            with thread_count(threads), single_threaded_blas():
                call(
                    optimal_kernels.sweep_optimal_validation_steps,
                    s2,
                    z,
                    np.ascontiguousarray(R),
                    c,
                    resid2,
                    n_val,
                    rows,
                    mse,
                    xi,
                    _chunks(s2.shape[0] * P),
                )
        else:
            with thread_count(threads):
                call(
                    optimal_kernels.sweep_optimal_validation,
                    s2,
                    z,
                    np.ascontiguousarray(R),
                    c,
                    resid2,
                    n_val,
                    np.ascontiguousarray(rows[:, 0]),
                    mse,
                    xi,
                    _chunks(s2.shape[0] * P),
                )
    warn_unrecoverable(xi)
    return (
        _unpromote(mse.reshape(mse.shape[:1] + grid + mse.shape[2:]), single),
        _unpromote(xi.reshape(xi.shape[:1] + grid + xi.shape[2:]), single),
    )
