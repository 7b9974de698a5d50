"""Tolerances, limits and backend names: the one home of fastsd's constants.

Every layer reads these values from here; none of them is configurable at run
time (they are part of what a result means).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BACKENDS",
    "BREAKDOWN_TOL",
    "EPS",
    "MAX_RESULT_BYTES",
    "XI_REPLAY_RTOL",
    "XI_ROUNDING_RTOL",
    "XI_RTOL",
]

#: The sweep backends: the Numba kernels and the plain-NumPy reference.
BACKENDS = ("numba", "numpy")

#: Largest result (bytes, float64 entries) an in-memory call may allocate:
#: 4 GiB. Larger grids belong in ``fastsd.sweep_*_chunked`` (memory-bounded,
#: ``out=`` on disk, ``reduce="min"``) or ``fastsd sweep``.
MAX_RESULT_BYTES = 4 << 30

#: Relative accuracy promised for reported xi: refitting with them (the literal
#: procedure) reproduces the optimal objective to this relative tolerance.
XI_RTOL = 1e-6
#: How XI_RTOL is shared out by the one xi acceptance rule
#: (:func:`fastsd.math.filters.schedule_reproducible`): half for the error of
#: the recovered xi themselves, measured by replaying them (XI_REPLAY_RTOL), and
#: a quarter each for the rounding of that replay and of a literal refit, both
#: bounded a priori by eps * max|xi| * p * cond(X^T X + lam I) <= XI_ROUNDING_RTOL.
#: The replay tolerance is twice the rounding the bound allows: a schedule whose
#: only defect is rounding is decided by the bound, which both backends evaluate
#: alike, not by the replay's last bits.
XI_REPLAY_RTOL = XI_RTOL / 2
XI_ROUNDING_RTOL = XI_RTOL / 4
#: float64 machine epsilon.
EPS = float(np.finfo(np.float64).eps)

#: Arnoldi breakdown: new direction below this fraction of the vector it came from.
BREAKDOWN_TOL = 1e-12
