"""Shared problem generators, parameter grids and helpers of the asv suite.

Nothing here is a benchmark. Every generator is seeded, and the parameter
grids are constants (they never depend on the machine), so results of
different commits and machines are comparable.

Vocabulary used throughout the suite:

* a *problem* is one design X (n, d) with theta*, noise and targets; a batch of
  B problems is X of shape (B, n, d);
* a *cell* is one (problem, lambda, xi schedule, step k, eigen-direction)
  update, the unit of work of every sweep: a sweep over B problems, L lambdas,
  G schedules and k = 0..K on p = min(n, d) directions does
  B * L * G * (K + 1) * p cells (G = 1 for the optimal-xi sweeps).
"""

from __future__ import annotations

import inspect
import time

import numpy as np

__all__ = [
    "BACKENDS",
    "SIZES",
    "SIZES_SMALL",
    "N_LAMS",
    "STEPS",
    "N_XIS",
    "ERROR_FLOOR",
    "accepts",
    "Problem",
    "make_problem",
    "lam_grid",
    "xi_grid",
    "cells",
    "best_time",
    "max_rel_error",
]

#: Implementations compared by every backend-parameterized benchmark.
BACKENDS = ["numba", "numpy"]
#: Problem sizes (B, n, d): a small one for quick runs, a moderate batch.
SIZES = [(1, 100, 20), (32, 200, 50)]
#: Sizes for benchmarks whose per-call cost grows fast (accuracy checks).
SIZES_SMALL = [(1, 100, 20), (8, 60, 30)]
#: Lambda-grid sizes L.
N_LAMS = [10, 50]
#: Maximum number of self-distillation steps K.
STEPS = [4, 16]
#: Number of constant xi schedules G in the fixed-xi sweeps.
N_XIS = 16

#: Accuracy benchmarks report at least this (half an ulp of 1.0): a value at
#: the floor means agreement to the last bit, and asv's regression detection
#: never divides by an exact 0.
ERROR_FLOOR = float(np.finfo(np.float64).eps / 2)


def accepts(func, keyword):
    """True if ``func`` takes the keyword argument ``keyword``."""
    try:
        return keyword in inspect.signature(func).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False


class Problem:
    """A seeded batch of synthetic ridge problems with validation and test sets.

    Attributes
    ----------
    X, X_val, X_test : ndarray of shape (B, n, d), (B, n_val, d), (B, n_test, d)
    y, y_val, y_test : ndarray of shape (B, n), (B, n_val), (B, n_test)
    theta : ndarray of shape (B, d)
        True coefficients theta*.
    noise_var : float
        sigma^2 of the additive Gaussian noise.
    """

    def __init__(self, B, n, d, *, seed=0, n_val=None, n_test=None, decay=1.0, noise_var=1.0):
        rng = np.random.default_rng(seed)
        # covariance eigenvalues j^-decay: a spread spectrum, where SD helps
        scale = np.arange(1, d + 1, dtype=np.float64) ** (-decay / 2)
        n_val = n_val if n_val is not None else max(n // 2, 2)
        n_test = n_test if n_test is not None else max(n, 2)
        self.noise_var = float(noise_var)
        self.theta = rng.standard_normal((B, d))
        sigma = np.sqrt(self.noise_var)

        def draw(m):
            X = rng.standard_normal((B, m, d)) * scale
            y = np.einsum("bmd,bd->bm", X, self.theta) + sigma * rng.standard_normal((B, m))
            return X, y

        self.X, self.y = draw(n)
        self.X_val, self.y_val = draw(n_val)
        self.X_test, self.y_test = draw(n_test)
        self.shape = (B, n, d)


def make_problem(size, seed=0, **kwargs):
    """:class:`Problem` of size (B, n, d)."""
    B, n, d = size
    return Problem(B, n, d, seed=seed, **kwargs)


def lam_grid(n_lams, n):
    """L ridge penalties, log-spaced around the scale n of the eigenvalues."""
    return n * np.logspace(-4, 1, n_lams)


def xi_grid(n_xis=N_XIS):
    """G constant imitation parameters, both sides of 0 and 1."""
    return np.linspace(-0.5, 2.0, n_xis)


def cells(size, n_lams, n_schedules, max_steps):
    """Cell updates of one sweep (see the module docstring)."""
    B, n, d = size
    return B * n_lams * n_schedules * (max_steps + 1) * min(n, d)


def best_time(func, min_total=0.25, max_calls=5):
    """Best wall time of ``func()`` over a few calls (already warmed up)."""
    times = []
    while len(times) < max_calls and (not times or sum(times) < min_total):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def max_rel_error(actual, desired, *, normwise=False):
    """Largest relative difference between two arrays, floored at ERROR_FLOOR.

    Parameters
    ----------
    actual, desired : array_like
        NaN in both at one position counts as agreement; NaN in one only
        counts as a relative error of 1.
    normwise : bool, default=False
        Divide by max |desired| instead of elementwise |desired| (for vectors
        whose entries may be near 0, e.g. coefficients).
    """
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(desired, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return ERROR_FLOOR
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    both = nan_a & nan_b
    a, b = np.where(both, 0.0, a), np.where(both, 0.0, b)
    tiny = np.finfo(np.float64).tiny
    if normwise:
        scale = max(float(np.max(np.abs(b))), tiny)
    else:
        scale = np.maximum(np.abs(b), tiny)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(a - b) / scale
    err = np.where(np.isfinite(err), err, 1.0)
    return max(float(np.max(err)), ERROR_FLOOR)


#: ``asv run --bench`` regexes of the smoke subset (CI, ``scripts/asv_dashboard.py
#: --reduced``): every benchmark class on its smallest parameters. asv matches
#: them against "name(param, ...)" with the parameters' reprs.
SMOKE_BENCH = [
    r"\('(numba|numpy)', \(1, 100, 20\), 10, 4\)$",  # sweeps + validation
    r"OptimalXiValidation.*\(\(1, 100, 20\), 10, 4\)$",
    r"Decompose.*\(1, 100, 20\)\)$",
    r"BackendAgreement.*\(1, 100, 20\)\)$",
    r"SpectralVsRefit.*\(\(4, 100, 20\), 4\)$",
    r"HighPrecision.*\b6, 10000\.0\)$",
    r"PaperWorkflow.*\(4, 100, 20\)\)$",
    r"memory\..*\('(numba|numpy)', 16777216\)$",
    r"ColdCompile\.track_cold_compile_seconds\('sweep_risk'\)$",
    r"TuneRidgeAndSD.*\(500, 20\)\)$",
    r"runner\..*\(8\)$",
    r"KernelSweepRisk.*\(4, 64\)\)$",
    r"EndToEnd.*\('small'\)$",
    r"SweepAsUsersPay.track_sweep_vs_api\('quick', 'fixed'\)$",  # local:2: the Dask tests
    r"history\.W[12].*\('numba'\)$",
    r"DecomposeLimit.*\('tall'\)$",
]


#: Modules and ``asv run --bench`` regexes of the published history: the benchmarks that
#: ``scripts/asv_dashboard.py --history`` runs against every commit of ``main``
#: and whose results are kept in ``benchmarks/results`` (the dashboard of the
#: docs). Two rules keep that stored history valid:
#:
#: * only the public API (``fastsd.decompose``, ``fastsd.sweep_risk``, ...,
#:   NumPy/SciPy directly), never a module path inside the package, so that they
#:   run on old commits and after the package's internals move;
#: * an explicit ``version`` attribute on each class: asv drops a stored result
#:   whose version differs from the benchmark's, and its default version is a
#:   hash of the benchmark's source, so any edit would hide the history. Bump
#:   ``version`` only when *what is measured* changes (inputs, what is timed, the
#:   reference); a refactor that measures the same thing keeps it.
HISTORY_MODULES = ["history", "accuracy"]
HISTORY_BENCH = [
    r"^history\.",
    r"^accuracy\.(OptimalRiskHighPrecision|OptimalXiHighPrecision|SpectralVsRefit)\.",
]
