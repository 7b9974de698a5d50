"""Validation selection: the xi minimizing a held-out MSE, in closed form (no grid)."""

import warnings

import fastsd

from .common import BACKENDS, N_LAMS, SIZES, STEPS, best_time, cells, lam_grid, make_problem


class SweepOptimalValidation:
    """``fastsd.sweep_optimal_validation``: validation-optimal xi and MSE, every lambda, k <= K."""

    params = [BACKENDS, SIZES, N_LAMS, STEPS]
    param_names = ["backend", "B_n_d", "n_lams", "K"]

    def setup(self, backend, size, n_lams, K):
        if not hasattr(fastsd, "sweep_optimal_validation"):
            raise NotImplementedError("fastsd.sweep_optimal_validation is not in this version")
        p = make_problem(size)
        self.problem = p
        self.dec = fastsd.decompose(p.X, p.y)
        self.lams = lam_grid(n_lams, size[1])
        self.n_cells = cells(size, n_lams, 1, K)
        self.run(backend, K)  # warm-up

    def run(self, backend, K):
        p = self.problem
        return fastsd.sweep_optimal_validation(
            self.dec, None, p.X_val, p.y_val, self.lams, K, backend=backend
        )

    def time_sweep_optimal_validation(self, backend, size, n_lams, K):
        self.run(backend, K)

    def track_cells_per_second(self, backend, size, n_lams, K):
        return self.n_cells / best_time(lambda: self.run(backend, K))

    track_cells_per_second.unit = "cells/s"


class OptimalXiValidation:
    """``fastsd.optimal_xi_validation``: one k, every lambda (NumPy only, no backend)."""

    params = [SIZES, N_LAMS, STEPS]
    param_names = ["B_n_d", "n_lams", "K"]

    def setup(self, size, n_lams, K):
        if not hasattr(fastsd, "optimal_xi_validation"):
            raise NotImplementedError("fastsd.optimal_xi_validation is not in this version")
        p = make_problem(size)
        self.problem = p
        self.dec = fastsd.decompose(p.X, p.y)
        self.lams = lam_grid(n_lams, size[1])
        self.time_optimal_xi_validation(size, n_lams, K)  # warm-up

    def time_optimal_xi_validation(self, size, n_lams, K):
        p = self.problem
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # IllConditionedXiWarning: xi reported as NaN
            fastsd.optimal_xi_validation(self.dec, None, p.X_val, p.y_val, self.lams, K)
