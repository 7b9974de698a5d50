r"""Batched sweeps over lambda, xi schedules and step counts, on two backends.

``backend="numba"`` runs the parallel kernels of :mod:`fastsd.kernels`;
``backend="numpy"`` runs the vectorized reference (:mod:`fastsd.reference`).
Both give the same numbers (to ~1e-12 relative) whatever the thread count.

Axis order of every result: ``(B, L, G, K + 1)`` -- problem, lambda, schedule,
number of steps k = 0..K (k = 0 is ridge). A single problem X of shape (n, d)
drops the B axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._typing import FloatArray
from .._validation import check_result_size, check_steps
from ..decomposition import Decomposition, targets_projection
from ..exceptions import quiet_numpy, warn_nonfinite, warn_unrecoverable
from .grids import (
    mse_grid,
    optimal_grid,
    optimal_population_grid,
    optimal_validation_grid,
    risk_grid,
    risk_population_grid,
)
from .inputs import (
    batched,
    check_backend,
    check_schedules,
    eval_inputs,
    oracle_inputs,
    penalty_rows,
    population_inputs,
    unbatch,
)

__all__ = [
    "sweep_risk",
    "sweep_optimal",
    "sweep_mse",
    "sweep_optimal_validation",
]


def _fixed_size(func: str, B: int, P: int, xis: ArrayLike, K: int) -> None:
    """Refuse a (B, P, G, K + 1) result over the limit before building the schedules."""
    G = np.shape(xis)[0] if np.ndim(xis) else 1
    check_result_size(func, [(B, P, G, K + 1)])


def _optimal_size(func: str, B: int, P: int, K: int) -> None:
    check_result_size(func, [(B, P, K + 1), (B, P, K, K)])


def _labelled(arr: FloatArray, grid: tuple[int, ...], single: bool) -> FloatArray:
    """(B, P, ...) -> (B, *grid, ...), without B for a single problem."""
    return unbatch(arr.reshape(arr.shape[:1] + grid + arr.shape[2:]), single)


def _evaluation(
    dec: Decomposition,
    single: bool,
    y: ArrayLike | None,
    X_eval: Any,
    y_eval: ArrayLike,
    names: tuple[str, str],
) -> tuple[int, tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, int]]:
    """B and the evaluation set as the grids take it.

    Returns
    -------
    B : int
    (s2, z, R, c, resid2, n_eval)
        s2 and z = V^T X^T y of shape (B, p); R, c, resid2, n_eval of
        :func:`fastsd.engine.inputs.eval_inputs`.
    """
    z = targets_projection(dec, y)
    R, c, resid2, n_eval = eval_inputs(dec, X_eval, y_eval, names)
    B = 1 if single else dec.batch_shape[0]
    return B, (dec.s2.reshape(B, -1), z.reshape(B, -1), R, c, resid2, n_eval)


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
    check_backend(backend, threads)
    K = check_steps(max_steps, "max_steps")
    rows, grid = penalty_rows(lams, student_lams, K)
    dec, single = batched(X)
    B = 1 if single else dec.batch_shape[0]
    if cov is not None:
        t, S, m, kappa, var = population_inputs(dec, theta_star, noise_var, cov)
    else:
        t, var = oracle_inputs(dec, theta_star, noise_var)
    _fixed_size("sweep_risk", B, rows.shape[0], xis, K)
    schedules = check_schedules(xis, K)
    s2 = dec.s2.reshape(B, -1)
    with quiet_numpy():
        if cov is not None:
            out = risk_population_grid(s2, t, S, m, kappa, var, rows, schedules, backend, threads)
        else:
            out = risk_grid(s2, t, var, dec.n_samples, rows, schedules, backend, threads)
    warn_nonfinite(out, "risks")
    return _labelled(out, grid, single)


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
    check_backend(backend, threads)
    K = check_steps(max_steps, "max_steps")
    rows, grid = penalty_rows(lams, student_lams, K)
    if cov is not None and backend != "numpy":
        raise ValueError(
            "cov in sweep_optimal (population risk) runs on the NumPy reference only "
            "(no Numba kernel yet); pass backend='numpy'"
        )
    dec, single = batched(X)
    B = 1 if single else dec.batch_shape[0]
    s2 = dec.s2.reshape(B, -1)
    if cov is not None:
        t, S, m, kappa, var = population_inputs(dec, theta_star, noise_var, cov)
        _optimal_size("sweep_optimal", B, rows.shape[0], K)
        with quiet_numpy():
            risk, xi = optimal_population_grid(s2, t, S, m, kappa, var, rows, K)
    else:
        t, var = oracle_inputs(dec, theta_star, noise_var)
        _optimal_size("sweep_optimal", B, rows.shape[0], K)
        with quiet_numpy():
            risk, xi = optimal_grid(s2, t, var, dec.n_samples, rows, K, backend, threads)
    warn_nonfinite(risk, "risks")
    warn_unrecoverable(xi)
    return _labelled(risk, grid, single), _labelled(xi, grid, single)


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
    check_backend(backend, threads)
    K = check_steps(max_steps, "max_steps")
    rows, grid = penalty_rows(lams, student_lams, K)
    dec, single = batched(X)
    B, data = _evaluation(dec, single, y, X_eval, y_eval, ("X_eval", "y_eval"))
    _fixed_size("sweep_mse", B, rows.shape[0], xis, K)
    schedules = check_schedules(xis, K)
    with quiet_numpy():
        out = mse_grid(*data, rows, schedules, backend, threads)
    warn_nonfinite(out, "MSEs")
    return _labelled(out, grid, single)


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
    check_backend(backend, threads)
    K = check_steps(max_steps, "max_steps")
    rows, grid = penalty_rows(lams, student_lams, K)
    dec, single = batched(X)
    B, data = _evaluation(dec, single, y, X_val, y_val, ("X_val", "y_val"))
    _optimal_size("sweep_optimal_validation", B, rows.shape[0], K)
    with quiet_numpy():
        mse, xi = optimal_validation_grid(*data, rows, K, backend, threads)
    warn_nonfinite(mse, "MSEs")
    warn_unrecoverable(xi)
    return _labelled(mse, grid, single), _labelled(xi, grid, single)
