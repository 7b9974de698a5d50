"""Plain-NumPy reference implementation of fastsd: the ground truth.

Two independent routes:

* :func:`self_distill_refit` -- the literal definition, k + 1 ridge solves;
* the vectorized spectral form (:mod:`.spectral`, :mod:`.optimal`), with no
  Python loop over problems, lambdas or xi values; :mod:`.population` for the
  random-design (population) risk given a feature covariance.

Every fast path (the Numba engine, the CLI, the asv suite) is tested and
benchmarked against these functions. They work on spectral quantities
(``s2``, ``t = V^T theta*``, ``z = V^T X^T y``) as produced by
:func:`fastsd.decompose`, and assume their inputs are already validated.
"""

from .._config import XI_RTOL
from . import population
from .literal import self_distill_refit
from .optimal import optimal_validation, sweep_optimal
from .spectral import (
    eval_mse,
    eval_projection,
    excess_risk_spectral,
    oracle_risk,
    self_distill_spectral,
    sweep_mse,
    sweep_risk,
)

__all__ = [
    "XI_RTOL",
    "eval_mse",
    "eval_projection",
    "excess_risk_spectral",
    "optimal_validation",
    "oracle_risk",
    "population",
    "self_distill_refit",
    "self_distill_spectral",
    "sweep_mse",
    "sweep_optimal",
    "sweep_risk",
]
