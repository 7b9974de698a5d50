"""Size guards: refuse a result too large to allocate, before allocating it.

Every public function that allocates an output growing with the grid
(lambdas, schedules, max_steps / k) checks its planned size here first, so
that ``sweep_risk(..., max_steps=10**9)`` or ``optimal_xi(..., k=10**6)`` is a
clear ValueError with the numbers instead of an 8 GB allocation or a
MemoryError.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["MAX_RESULT_BYTES", "check_result_size"]

#: Largest result (bytes, float64 entries) an in-memory call may allocate:
#: 4 GiB. Larger grids belong in ``fastsd.sweep_*_chunked`` (memory-bounded,
#: ``out=`` on disk, ``reduce="min"``) or ``fastsd sweep``.
MAX_RESULT_BYTES = 4 << 30


def check_result_size(func: str, shapes: Sequence[Sequence[int]], limit: int | None = None) -> int:
    """Raise ValueError when the float64 arrays of ``shapes`` exceed the limit.

    Parameters
    ----------
    func : str
        Name of the public function (for the message).
    shapes : sequence of tuple of int
        Shapes of the arrays the call would allocate.
    limit : int, optional
        Bytes; default :data:`MAX_RESULT_BYTES`.
    """
    limit = MAX_RESULT_BYTES if limit is None else limit
    need = 8 * sum(math.prod(int(n) for n in shape) for shape in shapes)
    if need > limit:
        plural = " + ".join(str(tuple(int(n) for n in s)) for s in shapes)
        raise ValueError(
            f"{func}: the result {plural} would need {need / 2**30:,.1f} GiB, over the "
            f"{limit / 2**30:,.1f} GiB limit (fastsd._limits.MAX_RESULT_BYTES); use fewer "
            "lambdas/schedules/steps, or the memory-bounded fastsd.sweep_*_chunked"
        )
    return need
