"""fastsd's warnings and exceptions, in one place.

Every public one is importable from here (and the most used from ``fastsd``).
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ChecksumError",
    "ConfigError",
    "IllConditionedXiWarning",
    "TuningWarning",
    "report_unrecoverable",
    "warn_unrecoverable",
]


class IllConditionedXiWarning(RuntimeWarning):
    """An optimal xi could not be recovered to working accuracy and is reported as NaN.

    The optimal risk (or validation MSE) is still exact; only its
    representation as imitation parameters is ill-conditioned (this happens
    when the optimal xi are astronomically large, e.g. for nearly equal
    singular values or very large k).
    """


class TuningWarning(UserWarning):
    """A tuning rule's choice was overridden by a safety guard (the message says why)."""


class ConfigError(ValueError):
    """A configuration problem, reported as one line by the CLI."""


class ChecksumError(OSError):
    """A dataset file does not have the SHA-256 digest it was published with."""


def report_unrecoverable(count: int, total: int, stacklevel: int = 3) -> int:
    """Warn once (:class:`IllConditionedXiWarning`) that ``count`` of ``total`` optimal
    xi schedules are NaN; returns ``count``."""
    if count:
        warnings.warn(
            f"{count} of {total} optimal xi schedules cannot be recovered in float64 and are "
            "NaN; their risks/MSEs are exact (see the numerics guide, 'when xi is reported')",
            IllConditionedXiWarning,
            stacklevel=stacklevel,
        )
    return count


def warn_unrecoverable(xi: NDArray[np.float64], stacklevel: int = 3) -> int:
    """:func:`report_unrecoverable` for optimal-xi results ``xi`` of shape (..., K, K)
    (row k - 1 the k-step schedule, NaN throughout where it is unrecoverable)."""
    if xi.shape[-1] == 0:
        return 0
    first = xi[..., 0]  # NaN iff that k-step schedule is unrecoverable
    return report_unrecoverable(int(np.count_nonzero(np.isnan(first))), first.size, stacklevel + 1)
