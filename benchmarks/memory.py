"""Peak memory of the chunked (memory-bounded) sweeps.

``peakmem_*`` is asv's whole-process peak resident set size, so it includes
the interpreter, NumPy/Numba and the loaded kernels (a fixed baseline of a few
hundred MB): compare it across commits and against the unchunked call of the
same class, not as an absolute. ``track_traced_peak_bytes`` is the precise
figure: the peak of NumPy/Python allocations during the call alone
(tracemalloc), which ``memory_limit`` bounds.

The data: 256 problems (n = 100, d = 20), best risk per problem and k over
the grid (``reduce="min"``), so the output is O(B K) and the working set is
what ``memory_limit`` controls.
"""

import tracemalloc

import numpy as np

import fastsd

from .common import BACKENDS, lam_grid, make_problem, xi_grid

MiB = 1 << 20
#: "unbounded": the plain (unchunked) sweep, for comparison.
MEMORY_LIMITS = ["unbounded", 16 * MiB, 128 * MiB]
CHUNKED_SIZE = (256, 100, 20)


def traced_peak(func):
    """Peak bytes allocated (tracemalloc) while ``func()`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class _Chunked:
    params = [BACKENDS, MEMORY_LIMITS]
    param_names = ["backend", "memory_limit"]
    api = None
    n_lams = None
    K = None

    def setup(self, backend, memory_limit):
        if not hasattr(fastsd, self.api):
            raise NotImplementedError(f"fastsd.{self.api} is not in this version")
        # warm-up on a tiny batch (loads/compiles the kernels without
        # touching the peak of the real call)
        tiny = make_problem((2, 10, 4), seed=1)
        self.call(tiny, lam_grid(3, 10), backend, memory_limit)
        self.problem = make_problem(CHUNKED_SIZE)
        self.lams = lam_grid(self.n_lams, CHUNKED_SIZE[1])

    def run(self, backend, memory_limit):
        return self.call(self.problem, self.lams, backend, memory_limit)

    def track_traced_peak_bytes(self, backend, memory_limit):
        return traced_peak(lambda: self.run(backend, memory_limit))

    track_traced_peak_bytes.unit = "bytes"


class ChunkedSweepRisk(_Chunked):
    """``fastsd.sweep_risk_chunked(..., reduce="min")``: L = 64, G = 16, K = 16."""

    api = "sweep_risk_chunked"
    n_lams = 64
    K = 16

    def call(self, p, lams, backend, memory_limit):
        if memory_limit == "unbounded":
            risk = fastsd.sweep_risk(
                p.X, p.theta, p.noise_var, lams, xi_grid(), self.K, backend=backend
            )
            return risk.min(axis=(1, 2))
        return fastsd.sweep_risk_chunked(
            p.X,
            p.theta,
            p.noise_var,
            lams,
            xi_grid(),
            self.K,
            reduce="min",
            memory_limit=memory_limit,
            backend=backend,
        )

    def peakmem_sweep_risk_chunked(self, backend, memory_limit):
        self.run(backend, memory_limit)


class ChunkedSweepOptimal(_Chunked):
    """``fastsd.sweep_optimal_chunked(..., reduce="min")``: L = 16, K = 16."""

    api = "sweep_optimal_chunked"
    n_lams = 16
    K = 16

    def call(self, p, lams, backend, memory_limit):
        if memory_limit == "unbounded":
            risk, _ = fastsd.sweep_optimal(p.X, p.theta, p.noise_var, lams, self.K, backend=backend)
            return np.min(risk, axis=1)
        return fastsd.sweep_optimal_chunked(
            p.X,
            p.theta,
            p.noise_var,
            lams,
            self.K,
            reduce="min",
            memory_limit=memory_limit,
            backend=backend,
        )

    def peakmem_sweep_optimal_chunked(self, backend, memory_limit):
        self.run(backend, memory_limit)
