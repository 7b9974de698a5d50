"""Spectral decomposition of a batch of designs (computed once, reused by every sweep)."""

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
