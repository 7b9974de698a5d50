"""Spectral decomposition of a batch of designs (computed once, reused by every sweep)."""

import os
import shutil
import tempfile

import numpy as np

import fastsd

from .common import BACKENDS, accepts, make_problem

#: Decomposition is cheap: one larger size than the sweeps.
DECOMPOSE_SIZES = [(1, 100, 20), (32, 200, 50), (128, 500, 100)]


class Decompose:
    """``fastsd.decompose(X, y, backend=...)`` on a batch X of shape (B, n, d).

    ``numba`` decomposes the B problems in parallel (one LAPACK eigh per
    thread); ``numpy`` uses NumPy's stacked eigh.
    """

    params = [BACKENDS, DECOMPOSE_SIZES]
    param_names = ["backend", "B_n_d"]

    def setup(self, backend, size):
        if not accepts(fastsd.decompose, "backend"):
            if backend != "numpy":
                raise NotImplementedError("decompose has no backend= in this version")
            self.kwargs = {}
        else:
            self.kwargs = {"backend": backend}
        self.problem = make_problem(size)
        self.time_decompose(backend, size)  # warm-up: JIT / cache load

    def time_decompose(self, backend, size):
        fastsd.decompose(self.problem.X, self.problem.y, **self.kwargs)


#: End-to-end workloads: "small" (B = 4, n = 2000, d = 64) for quick runs, then
#: W3 (64 x 4000 x 256), W4 (200 000 x 200), W5 (500 x 4000) and S (2e6 x 100
#: streamed from a 1.6 GB .npy file), as in ``fastsd bench --e2e``.
E2E_WORKLOADS = ["small", "W3", "W4", "W5", "S"]


class EndToEnd:
    """decompose + sweep_risk (64 lambdas, 16 xi, K = 8) + sweep_optimal, and the machine limit.

    ``track_fraction_of_limit`` is the limit's time over ``decompose``'s
    (median of 5 interleaved calls each; the limit is the better of a loop of
    scipy ``dsyrk`` + ``eigh(driver="evd")`` and one BLAS thread per problem
    with problems in parallel, see ``fastsd.bench.e2e``); higher is better.
    """

    params = [E2E_WORKLOADS]
    param_names = ["workload"]
    timeout = 900

    def setup(self, workload):
        try:
            from fastsd.bench.e2e import WORKLOADS
        except ImportError:
            raise NotImplementedError("no fastsd.bench.e2e in this version") from None
        B, n, d = (4, 2000, 64) if workload == "small" else WORKLOADS[workload]
        self.shape = (B, n, d) if B else (n, d)
        rng = np.random.default_rng(0)
        self.theta = rng.standard_normal(self.shape[:-2] + (d,))
        self.tmp = None
        if workload == "S":
            self.tmp = tempfile.mkdtemp(prefix="fastsd-asv-")
            self.X = os.path.join(self.tmp, "X.npy")
            out = np.lib.format.open_memmap(self.X, mode="w+", shape=self.shape)
            for start in range(0, n, 1 << 18):
                out[start : start + (1 << 18)] = rng.standard_normal((min(1 << 18, n - start), d))
            out.flush()
            del out
        else:
            self.X = rng.standard_normal(self.shape)
        self.lams, self.xis = np.logspace(-3, 3, 64), np.linspace(-1.0, 2.0, 16)

    def teardown(self, workload):
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def time_end_to_end(self, workload):
        dec = fastsd.decompose(self.X)
        fastsd.sweep_risk(dec, self.theta, 0.5, self.lams, self.xis, 8)
        fastsd.sweep_optimal(dec, self.theta, 0.5, self.lams, 8)

    def _measure(self, workload):
        from fastsd.bench.e2e import measure_workload

        return measure_workload("S" if workload == "S" else workload, self.shape, repeat=5)

    def track_fraction_of_limit(self, workload):
        return self._measure(workload)["fraction"]

    track_fraction_of_limit.unit = "fraction of the BLAS/LAPACK limit"

    def track_gflops(self, workload):
        return self._measure(workload)["gflops"]

    track_gflops.unit = "GFLOP/s (nominal: dsyrk k m^2 + dsyevd 4 m^3)"
