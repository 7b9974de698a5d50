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
    "XI_RTOL",
    "XI_SAFETY",
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
#: The phi-form replay must agree XI_SAFETY times more closely, leaving headroom
#: for the literal refit's own rounding (its linear solves and accumulation).
XI_SAFETY = 16.0
#: float64 machine epsilon.
EPS = float(np.finfo(np.float64).eps)

#: Arnoldi breakdown: new direction below this fraction of the vector it came from.
BREAKDOWN_TOL = 1e-12
