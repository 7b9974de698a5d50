"""The headline workloads, tracked over the project's whole history (the published dashboard).

* :class:`W1FixedXi` -- W1 of ``fastsd bench``: the fixed-xi risk sweep over
  B = 256 problems (n = 256, d = 64), L = 128 lambdas, G = 16 constant xi,
  k = 0..8 (3.0e8 cells), on both backends;
* :class:`W2OptimalXi` -- W2: the oracle-optimal xi for every k <= 8 on the
  same problems and lambdas;
* :class:`DecomposeLimit` -- ``fastsd.decompose`` against the BLAS/LAPACK
  limit on the same shapes, measured in the same process (a ratio, so it
  moves less with the machine's load than a time).

With the accuracy benchmarks of optimal risk and xi vs 50-digit mpmath and of
spectral vs literal refits, they are the published
history, ``common.HISTORY_BENCH``: they use only the public API and carry an
explicit ``version`` (see there why).
"""

import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dsyrk
from threadpoolctl import threadpool_limits

import fastsd

#: Threads of the limit and of fastsd's BLAS calls: the CPUs this process may use.
THREADS = len(os.sched_getaffinity(0))


def w1_inputs(B=256, n=256, d=64, L=128, G=16, K=8, seed=0):
    """W1/W2's inputs, as ``fastsd bench`` draws them (frozen here: the history's definition).

    Returns
    -------
    dec, theta, noise_var, lams, xis, K, cells
        ``dec`` = ``fastsd.decompose(X)`` of X (B, n, d); ``cells`` =
        B L G (K + 1) min(n, d), the cell updates of one W1 sweep.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, n, d))
    theta = rng.standard_normal((B, d))
    cells = B * L * G * (K + 1) * min(n, d)
    lams, xis = np.logspace(-4, 4, L), np.linspace(-1.0, 2.0, G)
    return fastsd.decompose(X), theta, np.full(B, 0.5), lams, xis, K, cells


def _numba_only(backend):
    """Skip (asv's NotImplementedError in a setup) every backend but numba."""
    if backend != "numba":
        raise NotImplementedError("tracked for backend='numba' only")


class _Workload:
    """W1/W2 setup: the inputs, decomposed once, and one warm-up call (JIT or cache load)."""

    params = [["numba", "numpy"]]
    param_names = ["backend"]
    # asv's timing: one call per sample (number = 1); up to 5 samples per process,
    # fewer where a call is slow (the NumPy reference, ~2 s) so that one process
    # spends at most ~5 s on them; no extra warm-up (setup warms up)
    number = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0
    timeout = 600

    def setup(self, backend):
        # asv calls setup again before every timed sample: the work is done once
        if getattr(self, "_ready", None) == backend:
            return
        self.dec, self.theta, self.var, self.lams, self.xis, self.K, self.cells = w1_inputs()
        self.run(backend)  # warm-up: JIT compilation or Numba cache load excluded
        self._ready = backend

    def run(self, backend):
        raise NotImplementedError


class W1FixedXi(_Workload):
    """W1: ``fastsd.sweep_risk`` of 16 constant xi schedules, k = 0..8 (3.0e8 cells)."""

    version = "1"

    def run(self, backend):
        return fastsd.sweep_risk(
            self.dec, self.theta, self.var, self.lams, self.xis, self.K, backend=backend
        )

    def time_sweep_risk(self, backend):
        self.run(backend)

    def track_cells_per_second(self, backend):
        """Cells over the median of 3 calls (after setup's warm-up call); numba only.

        The NumPy reference's history is its ``time_sweep_risk`` (cells/s =
        3.0e8 over it): 3 more calls of ~2 s each would double its cost.
        """
        times = []
        for _ in range(3):
            start = time.perf_counter()
            self.run(backend)
            times.append(time.perf_counter() - start)
        return self.cells / float(np.median(times))

    track_cells_per_second.unit = "cells/s"
    track_cells_per_second.setup = _numba_only  # asv runs it after the class's setup


class W2OptimalXi(_Workload):
    """W2: ``fastsd.sweep_optimal``, the oracle-optimal xi and risk for every lambda and k <= 8."""

    version = "1"

    def run(self, backend):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # IllConditionedXiWarning: xi NaN, risk exact
            return fastsd.sweep_optimal(
                self.dec, self.theta, self.var, self.lams, self.K, backend=backend
            )

    def time_sweep_optimal(self, backend):
        self.run(backend)


def limit_loop(problems):
    """Per problem: SciPy ``dsyrk`` + ``eigh(driver="evd")`` (eigenpairs), threaded BLAS.

    ``dsyrk`` reads the C-ordered X (n, d) as its Fortran-ordered transpose,
    without a copy: X^T X (trans = 0) if n >= d, else X X^T (trans = 1).
    """
    with threadpool_limits(THREADS, user_api="blas"):
        for Xb in problems:
            G = dsyrk(1.0, Xb.T, trans=int(Xb.shape[0] < Xb.shape[1]))
            scipy.linalg.eigh(G, lower=False, driver="evd", overwrite_a=True, check_finite=False)


def limit_parallel(problems):
    """One BLAS thread per problem, THREADS problems at a time (NumPy releases the GIL)."""

    def one(Xb):
        A = Xb if Xb.shape[0] >= Xb.shape[1] else Xb.T
        np.linalg.eigh(A.T @ A)

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, problems))


class DecomposeLimit:
    """``fastsd.decompose(X)`` as a fraction of the BLAS/LAPACK limit on the same X.

    The limit is the faster of :func:`limit_loop` and :func:`limit_parallel`:
    the Gram matrix of the smaller side and its eigenpairs, nothing else.
    ``decompose`` runs with the library defaults and threaded BLAS, as a user
    calls it. The three take turns (decompose, loop, parallel, decompose, ...)
    for 3 rounds after a first round, so a change of the machine's load hits
    all of them alike; the fraction is the better limit's median time over
    decompose's median time (higher is better, 1 = at the limit).

    Workloads as ``fastsd bench --e2e --quick``: ``batch`` = W3-quick, 16
    problems of 4000 x 256; ``tall`` = W4-quick, one problem of 50 000 x 200.
    """

    params = [["batch", "tall"]]
    param_names = ["workload"]
    version = "1"
    rounds = 3
    processes = 1  # the rounds interleave the three already
    timeout = 600

    def setup(self, workload):
        shape = {"batch": (16, 4000, 256), "tall": (50_000, 200)}[workload]
        self.X = np.random.default_rng(0).standard_normal(shape)
        self.problems = [self.X] if self.X.ndim == 2 else list(self.X)

    def decompose(self):
        with threadpool_limits(THREADS, user_api="blas"):
            fastsd.decompose(self.X)

    def track_fraction_of_limit(self, workload):
        funcs = {
            "decompose": self.decompose,
            "loop": lambda: limit_loop(self.problems),
            "parallel": lambda: limit_parallel(self.problems),
        }
        times = {key: [] for key in funcs}
        for _ in range(self.rounds + 1):
            for key, func in funcs.items():
                start = time.perf_counter()
                func()
                times[key].append(time.perf_counter() - start)
        med = {key: float(np.median(t[1:])) for key, t in times.items()}  # first round: warm-up
        return min(med["loop"], med["parallel"]) / med["decompose"]

    track_fraction_of_limit.unit = "fraction of the BLAS/LAPACK limit"
