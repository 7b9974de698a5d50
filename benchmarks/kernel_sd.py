"""Batched kernel-ridge self-distillation with per-step penalties (issue 11's workload).

B RBF kernel problems of n points, decomposed once (:func:`fastsd.decompose_kernel`,
batched); the sweep is the in-sample risk for target values f* over a teacher x
student grid of per-step penalties (8 x 8 = 64 schedules), G = 16 constant xi
and k = 0..8. ``track_cells_per_second`` counts B * 64 * G * (K + 1) * n cells.
"""

import numpy as np

import fastsd

from .common import BACKENDS, best_time


class KernelSweepRisk:
    """``fastsd.sweep_risk`` on a kernel decomposition with ``student_lams``."""

    params = [BACKENDS, [(4, 64), (64, 512)]]
    param_names = ["backend", "B_n"]

    def setup(self, backend, size):
        if not hasattr(fastsd, "decompose_kernel"):
            raise NotImplementedError("fastsd.decompose_kernel is not in this version")
        from fastsd.bench.kernels import kernel_workload

        B, n = size
        w = kernel_workload(B=B, n=n)
        self.w = w
        self.n_cells = (
            B * w["teachers"].size * w["students"].size * w["xis"].size * (w["K"] + 1) * n
        )
        self.run(backend)  # warm-up

    def run(self, backend):
        w = self.w
        return fastsd.sweep_risk(
            w["dec"],
            w["f_star"],
            w["noise_var"],
            w["teachers"],
            w["xis"],
            w["K"],
            student_lams=w["students"],
            backend=backend,
        )

    def time_kernel_sweep_risk(self, backend, size):
        self.run(backend)

    def track_cells_per_second(self, backend, size):
        return self.n_cells / best_time(lambda: self.run(backend))

    track_cells_per_second.unit = "cells/s"

    def track_max_rel_error_vs_reference(self, backend, size):
        """numba vs the NumPy reference on the same inputs (accuracy of the fast path)."""
        ref = self.run("numpy")
        return float(np.max(np.abs(self.run(backend) - ref) / np.abs(ref)))

    track_max_rel_error_vs_reference.unit = "relative error"
