r"""Argument checks of the engine's public functions, one home each.

Each helper checks one kind of argument against a decomposition and returns
it as the cores (:mod:`fastsd.engine.grids`, :mod:`fastsd.reference`) take it:
float64 arrays with a leading batch axis B (a single problem becomes a batch of
one; :func:`unbatch` drops the axis again). Errors are one-line
``ValueError`` / ``TypeError`` naming the argument and the fix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import reference
from .._config import BACKENDS
from .._jit import check_threads
from .._typing import FloatArray
from .._validation import (
    as_float_array,
    check_lams,
    check_noise_var,
    check_result_size,
    check_steps,
)
from ..decomposition import Decomposition, KernelDecomposition, as_decomposition
from ..decomposition.streamed import eval_projection as streamed_eval_projection
from ..decomposition.streamed import is_streamed
from .grids import constant_schedules, lam_rows

__all__ = [
    "batched",
    "check_backend",
    "check_cov",
    "check_schedules",
    "check_theta",
    "eval_inputs",
    "oracle_inputs",
    "penalty_rows",
    "population_inputs",
    "unbatch",
]


def check_backend(backend: str, threads: int | None = None) -> None:
    """``backend`` one of :data:`fastsd._config.BACKENDS`, ``threads`` None or 1..NUMBA_NUM_THREADS."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    check_threads(threads)


def batched(X: ArrayLike | Decomposition, name: str = "X") -> tuple[Decomposition, bool]:
    """(decomposition of X, single): X decomposed unless it already is one."""
    dec = as_decomposition(X, name)
    return dec, not dec.batched


def unbatch(arr: FloatArray, single: bool) -> FloatArray:
    """Drop the batch axis of a single problem's result."""
    return arr[0] if single else arr


def _batch(arr: FloatArray, single: bool) -> FloatArray:
    return arr[None] if single else arr


def penalty_rows(
    lams: ArrayLike, student_lams: ArrayLike | None, max_steps: int
) -> tuple[FloatArray, tuple[int, ...]]:
    """(penalty rows (P, S) of :func:`fastsd.engine.grids.lam_rows`, grid shape (L,) or (L, M))."""
    lams, _ = check_lams(lams, "lams")
    if student_lams is None:
        return lam_rows(lams, None, max_steps), (lams.size,)
    students, _ = check_lams(student_lams, "student_lams")
    check_result_size("the penalty schedules", [(lams.size * students.size, max_steps + 1)])
    return lam_rows(lams, students, max_steps), (lams.size, students.size)


def check_schedules(xis: ArrayLike, max_steps: int) -> FloatArray:
    """xi grid (G,) of constant schedules, or explicit schedules (G, K) -> (G, K)."""
    K = check_steps(max_steps, "max_steps")
    xis = as_float_array(xis, "xis", ndim=(1, 2), allow_empty=True)
    if xis.shape[0] == 0:
        raise ValueError(f"xis is empty (shape {xis.shape}); pass at least one schedule")
    if xis.ndim == 1:
        check_result_size("the xi schedules", [(xis.shape[0], K)])
        return constant_schedules(xis, K)
    if xis.shape[1] != K:
        raise ValueError(
            f"xis of shape (G, K) must have K = max_steps = {K} columns, got {xis.shape}"
        )
    return xis


def check_theta(dec: Decomposition, theta_star: ArrayLike, name: str = "theta_star") -> FloatArray:
    """theta* as a float64 array of shape ([B,] d) matching the decomposition."""
    theta = as_float_array(theta_star, name, ndim=(1, 2))
    expected = dec.batch_shape + (dec.n_features,)
    if theta.shape != expected:
        raise ValueError(f"{name} must have shape {expected} to match X, got {theta.shape}")
    return theta


def oracle_inputs(
    dec: Decomposition, theta_star: ArrayLike, noise_var: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """(t = V^T theta* (B, p), sigma^2 (B,)) of the oracle sweeps."""
    single = not dec.batched
    t = _batch(dec.project_theta(check_theta(dec, theta_star), check=False), single)
    var = check_noise_var(noise_var, dec.batch_shape)
    return t, np.array(np.broadcast_to(var, t.shape[:1]), dtype=np.float64)


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


def population_inputs(
    dec: Decomposition, theta_star: ArrayLike, noise_var: ArrayLike, cov: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """(t, S, m, kappa, sigma^2) with a batch axis, for the population risk
    (see :func:`fastsd.reference.population.cov_projection`)."""
    if isinstance(dec, KernelDecomposition):
        raise ValueError(
            "cov applies to feature-space decompositions; with a kernel "
            "decomposition the risk is the in-sample ||f_k - f*||^2/n (cov=None)"
        )
    cov = check_cov(cov, dec)
    theta = check_theta(dec, theta_star)
    single = not dec.batched
    t = _batch(dec.project_theta(theta, check=False), single)
    S, m, kappa = reference.population.cov_projection(
        _batch(dec.V, single), _batch(theta, single), _batch(cov, single)
    )
    var = np.broadcast_to(check_noise_var(noise_var, dec.batch_shape), t.shape[:1])
    return t, S, m, kappa, var


def eval_inputs(
    dec: Decomposition, X_eval: Any, y_eval: ArrayLike, names: tuple[str, str]
) -> tuple[FloatArray, FloatArray, FloatArray, int]:
    """The evaluation set compressed for the sweeps: (R, c, resid2, n_eval) with a batch
    axis, from :func:`fastsd.reference.eval_projection` of (X_eval V, y_eval); a streamed
    X_eval (one problem) is read once, block by block."""
    single = not dec.batched
    if is_streamed(X_eval) and single:  # larger than memory: QR updated block by block
        R, c, resid2_one, n_eval = streamed_eval_projection(X_eval, y_eval, dec.V, names=names)
        return R[None], c[None], np.array([resid2_one]), n_eval
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
        _batch(dec.eval_basis(X_eval), single), _batch(y_eval, single)
    )
    return R, c, resid2, y_eval.shape[-1]
