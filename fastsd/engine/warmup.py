"""Compile (or load from the on-disk cache) every kernel before the first real call."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .._typing import FloatArray
from ..exceptions import ignore_unrecoverable
from .sweeps import sweep_mse, sweep_optimal, sweep_optimal_validation, sweep_risk

__all__ = ["warmup"]


def _tiny() -> dict[str, FloatArray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 12, 3))
    theta = rng.normal(size=(2, 3))
    X_val = rng.normal(size=(2, 5, 3))
    return dict(
        X=X,
        theta=theta,
        y=np.einsum("bnd,bd->bn", X, theta),
        X_val=X_val,
        y_val=np.einsum("bnd,bd->bn", X_val, theta),
        lams=np.array([0.1, 1.0]),
        students=np.array([0.5]),
        xis=np.array([0.5]),
        cov=np.eye(3),
    )


def warmup() -> dict[str, float]:
    """Compile, or load from the on-disk cache, every Numba kernel of fastsd.

    Runs each kind of sweep once on a tiny batch, through the same calls as
    real work, so that no later call in this process pays for compiling. The
    first warm-up on a machine compiles and fills the cache; later ones (a new
    session, a Dask worker) load the machine code from it in a fraction of a
    second. Results of later calls do not depend on whether it ran.

    Returns
    -------
    seconds : dict of str to float
        Time each kind of sweep took to get ready, keyed by the public function
        (``"sweep_risk"``, ``"sweep_risk(cov=...)"``, ``"sweep_mse"``,
        ``"sweep_optimal"``, ``"sweep_optimal(student_lams=...)"``,
        ``"sweep_optimal_validation"``,
        ``"sweep_optimal_validation(student_lams=...)"``).

    Examples
    --------
    >>> seconds = fastsd.warmup()
    >>> sorted(seconds)[:2]
    ['sweep_mse', 'sweep_optimal']
    """
    t = _tiny()
    X, theta, y, X_val, y_val = t["X"], t["theta"], t["y"], t["X_val"], t["y_val"]
    lams, students, xis = t["lams"], t["students"], t["xis"]
    calls: dict[str, Callable[[], object]] = {
        "sweep_risk": lambda: sweep_risk(X, theta, 1.0, lams, xis, 2),
        "sweep_risk(cov=...)": lambda: sweep_risk(X, theta, 1.0, lams, xis, 2, cov=t["cov"]),
        "sweep_mse": lambda: sweep_mse(X, y, X_val, y_val, lams, xis, 2),
        "sweep_optimal": lambda: sweep_optimal(X, theta, 1.0, lams, 2),
        "sweep_optimal(student_lams=...)": lambda: sweep_optimal(
            X, theta, 1.0, lams, 2, student_lams=students
        ),
        "sweep_optimal_validation": lambda: sweep_optimal_validation(X, y, X_val, y_val, lams, 2),
        "sweep_optimal_validation(student_lams=...)": lambda: sweep_optimal_validation(
            X, y, X_val, y_val, lams, 2, student_lams=students
        ),
    }
    seconds = {}
    with ignore_unrecoverable():  # unrecoverable xi of the tiny problems
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name] = time.perf_counter() - start
    return seconds
