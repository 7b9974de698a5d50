r"""The sweep cores: grids on spectral inputs, already checked, on either backend.

The public sweeps (:mod:`fastsd.engine.sweeps`) validate their arguments once
and call these; so do the block tasks (:mod:`fastsd.blocks.tasks`), the
chunked sweeps and the CLI, with inputs checked when the sweep started. Nothing
here checks, copies or warns: every argument is a float64 array of the shape
given, with a leading batch axis B.

Common arguments
----------------
s2 : ndarray of shape (B, p)
    Eigenvalues of X^T X, descending, numerically zero ones exactly 0.
rows : ndarray of shape (P, S)
    Penalty rows: S = 1 (one penalty per lambda) or S = K + 1 (the schedule
    lam_0..lam_K of a teacher x student grid), see :func:`lam_rows`.
schedules : ndarray of shape (G, K)
    Row g holds xi_1..xi_K (k steps use its first k entries).
backend : {"numba", "numpy"}
threads : int or None
    Numba threads (None: as set).

Results have axes (B, P, G, K + 1) (fixed xi) or (B, P, K + 1) and
(B, P, K, K) (optimal xi: row k - 1 holds the k-step schedule, NaN where it
cannot be recovered).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numba
import numpy as np

from .. import reference
from .._jit import call
from .._jit import threads as thread_count
from .._typing import FloatArray
from ..decomposition.lapack import blas_threads
from ..kernels import optimal as optimal_kernels
from ..kernels import sweep as sweep_kernels

__all__ = [
    "constant_schedules",
    "lam_rows",
    "mse_grid",
    "optimal_grid",
    "optimal_population_grid",
    "optimal_validation_grid",
    "risk_grid",
    "risk_population_grid",
]


def lam_rows(lams: FloatArray, students: FloatArray | None, max_steps: int) -> FloatArray:
    """Penalty rows (P, S): lams (L,) as (L, 1), or with student penalties (M,) the
    L x M schedules (lam_t, lam_s, ..., lam_s) of K + 1 penalties, teacher-major."""
    if students is None:
        return lams[:, None]
    rows = np.empty((lams.size, students.size, max_steps + 1))
    rows[..., 0] = lams[:, None]
    rows[..., 1:] = students[None, :, None]
    return rows.reshape(-1, max_steps + 1)


def constant_schedules(xis: FloatArray, max_steps: int) -> FloatArray:
    """Schedules (G, K) that repeat each constant xi (G,) at every step."""
    return np.repeat(xis[:, None], max_steps, axis=1)


def _reference_lams(rows: FloatArray) -> FloatArray:
    """The reference's lams argument: (L,) for one penalty per row, else (P, K + 1)."""
    return rows[:, 0] if rows.shape[1] == 1 else rows


def _chunks(pairs: int) -> int:
    """Parallel work units: enough per thread to balance the load."""
    return max(1, min(pairs, 16 * numba.get_num_threads()))


def _optimal_variant(
    rows: FloatArray, one: Callable[..., None], steps: Callable[..., None]
) -> tuple[Callable[..., None], FloatArray, AbstractContextManager[Any]]:
    """(kernel, its penalty argument, BLAS context) for one penalty per row or schedules:
    the per-step kernels call LAPACK from each thread, so BLAS runs single-threaded."""
    if rows.shape[1] > 1:
        return steps, rows, blas_threads(1)
    return one, np.ascontiguousarray(rows[:, 0]), contextlib.nullcontext()


def _fixed_xi(
    kernel: Callable[..., None],
    data: tuple[Any, ...],
    s2: FloatArray,
    rows: FloatArray,
    schedules: FloatArray,
    threads: int | None,
    blas: AbstractContextManager[Any],
) -> FloatArray:
    """Run a fixed-xi sweep kernel ``kernel(*data, rows, schedules, out, chunks)``.

    Returns
    -------
    out : ndarray of shape (B, P, G, K + 1)
    """
    B, P = s2.shape[0], rows.shape[0]
    out = np.empty((B, P, schedules.shape[0], schedules.shape[1] + 1))
    with thread_count(threads), blas:
        call(kernel, *data, rows, schedules, out, _chunks(B * P))
    return out


def _optimal_xi(
    one: Callable[..., None],
    steps: Callable[..., None],
    data: tuple[Any, ...],
    s2: FloatArray,
    rows: FloatArray,
    max_steps: int,
    threads: int | None,
) -> tuple[FloatArray, FloatArray]:
    """Run an optimal-xi kernel ``kernel(*data, lams, risk, xi, chunks)``, the
    kernel and its penalty argument picked by :func:`_optimal_variant`.

    Returns
    -------
    risk : ndarray of shape (B, P, K + 1)
    xi : ndarray of shape (B, P, K, K)
        NaN where no schedule is recovered (and above the diagonal).
    """
    B, P, K = s2.shape[0], rows.shape[0], max_steps
    risk = np.empty((B, P, K + 1))
    xi = np.full((B, P, K, K), np.nan)
    kernel, lams, blas = _optimal_variant(rows, one, steps)
    with thread_count(threads), blas:
        call(kernel, *data, lams, risk, xi, _chunks(B * P))
    return risk, xi


def risk_grid(
    s2: FloatArray,
    t: FloatArray,
    noise_var: FloatArray,
    n: int,
    rows: FloatArray,
    schedules: FloatArray,
    backend: str,
    threads: int | None,
) -> FloatArray:
    """Fixed-design excess risk (B, P, G, K + 1); t = V^T theta* (B, p), noise_var (B,)."""
    if backend == "numpy":
        out: FloatArray = reference.sweep_risk(
            s2, t, noise_var, n, _reference_lams(rows), schedules
        )
        return out
    data = (s2, t * t, noise_var, n)
    return _fixed_xi(
        sweep_kernels.sweep_risk, data, s2, rows, schedules, threads, contextlib.nullcontext()
    )


def risk_population_grid(
    s2: FloatArray,
    t: FloatArray,
    S: FloatArray,
    m: FloatArray,
    kappa: FloatArray,
    noise_var: FloatArray,
    rows: FloatArray,
    schedules: FloatArray,
    backend: str,
    threads: int | None,
) -> FloatArray:
    """Population risk (B, P, G, K + 1) from :func:`fastsd.reference.population.cov_projection`."""
    if backend == "numpy":
        out: FloatArray = reference.population.sweep_risk_population(
            s2, t, S, m, kappa, noise_var, _reference_lams(rows), schedules
        )
        return out
    data = (
        s2,
        t,
        np.ascontiguousarray(S),
        m,
        np.ascontiguousarray(kappa, dtype=np.float64),
        reference.population.noise_diagonal(s2, S, noise_var),
    )
    return _fixed_xi(
        sweep_kernels.sweep_risk_population,
        data,
        s2,
        rows,
        schedules,
        threads,
        contextlib.nullcontext(),
    )


def optimal_grid(
    s2: FloatArray,
    t: FloatArray,
    noise_var: FloatArray,
    n: int,
    rows: FloatArray,
    max_steps: int,
    backend: str,
    threads: int | None,
) -> tuple[FloatArray, FloatArray]:
    """Oracle-optimal risk (B, P, K + 1) and xi (B, P, K, K)."""
    if backend == "numpy":
        risk: FloatArray
        xi: FloatArray
        risk, xi = reference.sweep_optimal(s2, t, noise_var, n, _reference_lams(rows), max_steps)
        return risk, xi
    return _optimal_xi(
        optimal_kernels.sweep_optimal,
        optimal_kernels.sweep_optimal_steps,
        (s2, t * t, noise_var, n),
        s2,
        rows,
        max_steps,
        threads,
    )


def optimal_population_grid(
    s2: FloatArray,
    t: FloatArray,
    S: FloatArray,
    m: FloatArray,
    kappa: FloatArray,
    noise_var: FloatArray,
    rows: FloatArray,
    max_steps: int,
) -> tuple[FloatArray, FloatArray]:
    """Population-optimal risk (B, P, K + 1) and xi (B, P, K, K) (NumPy reference only)."""
    risk: FloatArray
    xi: FloatArray
    risk, xi = reference.population.sweep_optimal_population(
        s2, t, S, m, kappa, noise_var, _reference_lams(rows), max_steps
    )
    return risk, xi


def mse_grid(
    s2: FloatArray,
    z: FloatArray,
    R: FloatArray,
    c: FloatArray,
    resid2: FloatArray,
    n_eval: int,
    rows: FloatArray,
    schedules: FloatArray,
    backend: str,
    threads: int | None,
) -> FloatArray:
    """Evaluation MSE (B, P, G, K + 1); z = V^T X^T y and the evaluation set as
    ``R, c, resid2`` of :func:`fastsd.reference.eval_projection`."""
    if backend == "numpy":
        out: FloatArray = reference.sweep_mse(
            s2, z, R, c, resid2, n_eval, _reference_lams(rows), schedules
        )
        return out
    data = (s2, z, np.ascontiguousarray(R), c, resid2, n_eval)
    return _fixed_xi(sweep_kernels.sweep_mse, data, s2, rows, schedules, threads, blas_threads(1))


def optimal_validation_grid(
    s2: FloatArray,
    z: FloatArray,
    R: FloatArray,
    c: FloatArray,
    resid2: FloatArray,
    n_eval: int,
    rows: FloatArray,
    max_steps: int,
    backend: str,
    threads: int | None,
) -> tuple[FloatArray, FloatArray]:
    """Validation-optimal MSE (B, P, K + 1) and xi (B, P, K, K)."""
    if backend == "numpy":
        mse: FloatArray
        xi: FloatArray
        mse, xi = reference.optimal_validation(
            s2, z, R, c, resid2, n_eval, _reference_lams(rows), max_steps
        )
        return mse, xi
    return _optimal_xi(
        optimal_kernels.sweep_optimal_validation,
        optimal_kernels.sweep_optimal_validation_steps,
        (s2, z, np.ascontiguousarray(R), c, resid2, n_eval),
        s2,
        rows,
        max_steps,
        threads,
    )
