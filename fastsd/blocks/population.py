r"""Block task of the population risk: oracle sweeps of random-design problems.

A random-design problem carries the covariance Sigma of its rows (e.g.
:func:`fastsd.problems.random_design_family`); its risk is the population
excess risk E_eps ||theta_k - theta*||^2_Sigma instead of the fixed-design one
(:func:`fastsd.sweep_risk` / :func:`fastsd.sweep_optimal` with ``cov=``). The
task decomposes a block's problems as :class:`~fastsd.blocks.tasks.SweepTask`
does, projects Sigma once per problem
(:func:`fastsd.reference.population.cov_projection`) and calls the population
cores; its results have the layout of the oracle kinds.
"""

from __future__ import annotations

from typing import Any

from .. import reference
from .._typing import FloatArray
from ..engine.grids import lam_rows, optimal_population_grid, risk_population_grid
from .plan import Block
from .tasks import BlockResult, SweepTask

__all__ = ["PopulationTask"]


class PopulationTask(SweepTask):
    """An oracle :class:`~fastsd.blocks.tasks.SweepTask` ("risk" or "optimal") on the
    population risk.

    Parameters
    ----------
    cov : ndarray of shape (B, d, d)
        Sigma of each problem, checked (symmetric positive semidefinite).
    *args, **kwargs
        As for :class:`~fastsd.blocks.tasks.SweepTask`; ``"optimal"`` runs on the
        NumPy reference whatever ``backend`` says (no Numba kernel yet).
    """

    def __init__(self, *args: Any, cov: FloatArray, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.kind not in ("risk", "optimal"):
            raise ValueError(f"the population risk is an oracle kind, got {self.kind!r}")
        self.cov = cov

    INPUTS = SweepTask.INPUTS + ("cov",)

    def __call__(self, block: Block) -> BlockResult:
        dec = self._decomposition(block.b0, block.b1)
        b0, b1 = block.b0 - self.first, block.b1 - self.first  # rows of this task's inputs
        assert self.theta_star is not None and self.noise_var is not None  # oracle kinds
        theta = self.theta_star[b0:b1]
        t = dec.project_theta(theta, check=False)
        S, m, kappa = reference.population.cov_projection(dec.V, theta, self.cov[b0:b1])
        var = self.noise_var[b0:b1]
        rows = lam_rows(self.lams[block.l0 : block.l1], None, self.max_steps)
        if self.kind == "risk":
            assert self.schedules is not None  # fixed-xi kind
            risk = risk_population_grid(
                dec.s2, t, S, m, kappa, var, rows, self.schedules, self.backend, self.threads
            )
            return {"risk": risk}
        risk, xi = optimal_population_grid(dec.s2, t, S, m, kappa, var, rows, self.max_steps)
        return {"risk": risk, "xi": xi}
