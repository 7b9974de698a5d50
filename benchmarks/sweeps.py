"""Sweeps over (problem, lambda, xi schedule, k): fixed-xi risk and MSE, optimal-xi risk.

Every class times one sweep call (``time_*``) and reports its throughput in
cell updates per second (``track_cells_per_second``; see
:mod:`benchmarks.common` for what a cell is). The data are decomposed once in
``setup``: the sweeps are timed on a reused :class:`fastsd.Decomposition`,
which is how they are meant to be used.
"""

import fastsd

from .common import (
    BACKENDS,
    N_LAMS,
    N_XIS,
    SIZES,
    STEPS,
    best_time,
    cells,
    lam_grid,
    make_problem,
    xi_grid,
)

PARAMS = [BACKENDS, SIZES, N_LAMS, STEPS]
PARAM_NAMES = ["backend", "B_n_d", "n_lams", "K"]


class _Sweep:
    """Shared setup: seeded batch, its decomposition, grids, one warm-up call."""

    params = PARAMS
    param_names = PARAM_NAMES
    api = None  # name of the fastsd function, checked in setup
    n_schedules = N_XIS

    def setup(self, backend, size, n_lams, K):
        if not hasattr(fastsd, self.api):
            raise NotImplementedError(f"fastsd.{self.api} is not in this version")
        p = make_problem(size)
        self.problem = p
        self.dec = fastsd.decompose(p.X, p.y)
        self.lams = lam_grid(n_lams, size[1])
        self.xis = xi_grid(self.n_schedules)
        self.n_cells = cells(size, n_lams, self.n_schedules, K)
        self.run(backend, K)  # warm-up: JIT compilation / cache load excluded

    def run(self, backend, K):
        raise NotImplementedError

    def track_cells_per_second(self, backend, size, n_lams, K):
        return self.n_cells / best_time(lambda: self.run(backend, K))

    track_cells_per_second.unit = "cells/s"


class SweepRisk(_Sweep):
    """``fastsd.sweep_risk``: excess risk of G constant xi schedules, k = 0..K."""

    api = "sweep_risk"

    def run(self, backend, K):
        p = self.problem
        return fastsd.sweep_risk(
            self.dec, p.theta, p.noise_var, self.lams, self.xis, K, backend=backend
        )

    def time_sweep_risk(self, backend, size, n_lams, K):
        self.run(backend, K)


class SweepMSE(_Sweep):
    """``fastsd.sweep_mse``: held-out MSE of G constant xi schedules, k = 0..K."""

    api = "sweep_mse"

    def run(self, backend, K):
        p = self.problem
        return fastsd.sweep_mse(
            self.dec, None, p.X_val, p.y_val, self.lams, self.xis, K, backend=backend
        )

    def time_sweep_mse(self, backend, size, n_lams, K):
        self.run(backend, K)


class SweepOptimal(_Sweep):
    """``fastsd.sweep_optimal``: oracle-optimal xi and risk for every lambda and k <= K."""

    api = "sweep_optimal"
    n_schedules = 1

    def run(self, backend, K):
        p = self.problem
        return fastsd.sweep_optimal(self.dec, p.theta, p.noise_var, self.lams, K, backend=backend)

    def time_sweep_optimal(self, backend, size, n_lams, K):
        self.run(backend, K)
