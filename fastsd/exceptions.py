"""fastsd's warnings and exceptions, in one place.

Every public one is importable from here (and the most used from ``fastsd``).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ChecksumError",
    "ConfigError",
    "DamagedStoreError",
    "IllConditionedXiWarning",
    "NonFiniteResultWarning",
    "StoreIntegrityWarning",
    "TuningWarning",
    "ignore_unrecoverable",
    "report_nonfinite",
    "report_unrecoverable",
    "warn_nonfinite",
    "warn_unrecoverable",
]


class IllConditionedXiWarning(RuntimeWarning):
    """Some optimal xi are NaN: they cannot be recovered in float64 (their risks are exact).

    The optimal risk (or validation MSE) is still exact; only its
    representation as imitation parameters is ill-conditioned (the optimal xi
    are astronomically large, e.g. for nearly equal singular values, very
    large k or small lambda). Mask the NaN schedules with
    ``~np.isnan(xi[..., 0])`` (``xi_reproducible`` in a labelled or stored
    sweep); see "When xi is NaN" in the numerics guide. At most one per call.
    """


class NonFiniteResultWarning(RuntimeWarning):
    """A sweep returned inf or NaN risks / MSEs (float64 overflow, e.g. from a huge xi).

    Every backend warns once per call with the count; the numbers themselves
    are returned unchanged (``np.isfinite`` says which).
    """


class TuningWarning(UserWarning):
    """A tuning rule's choice was overridden by a safety guard (the message says why)."""


class ConfigError(ValueError):
    """A configuration problem, reported as one line by the CLI."""


class DamagedStoreError(ValueError):
    """A stored block of a sweep output is damaged: a chunk file is missing or does not
    have the checksum recorded when it was written (the message names the block, the
    file and the fix: ``fastsd sweep CONFIG --resume`` recomputes it)."""


class StoreIntegrityWarning(UserWarning):
    """A sweep store could not be trusted whole: ``--resume`` recomputes blocks that
    failed verification, or a store written before fastsd recorded checksums is read
    unverified (the message says which and how many)."""


class ChecksumError(OSError):
    """A dataset file does not have the SHA-256 digest it was published with."""


def report_unrecoverable(count: int, total: int, stacklevel: int = 3) -> int:
    """Warn once (:class:`IllConditionedXiWarning`) that ``count`` of ``total`` optimal
    xi schedules are NaN; returns ``count``. The one wording of that warning."""
    if count:
        warnings.warn(
            f"risks are exact; the xi that attain them cannot be recovered in float64 for "
            f"{count} of {total} schedules (NaN there; mask: xi_reproducible = "
            "~np.isnan(xi[..., 0])); see 'When xi is NaN' in the fastsd numerics guide",
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


@contextlib.contextmanager
def ignore_unrecoverable() -> Iterator[None]:
    """Silence :class:`IllConditionedXiWarning` in a block that handles NaN xi itself.

    For code that masks the unrecoverable schedules (``~np.isnan(xi[..., 0])``)
    or does not use xi at all; every other warning still shows.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedXiWarning)
        yield


def report_nonfinite(count: int, total: int, what: str = "risks", stacklevel: int = 3) -> int:
    """Warn once (:class:`NonFiniteResultWarning`) that ``count`` of ``total`` values
    ``what`` are inf or NaN; returns ``count``."""
    if count:
        warnings.warn(
            f"{count} of {total} {what} are inf or NaN (float64 overflow, e.g. from a very "
            "large |xi| or lambda); shrink the grid or rescale the problem",
            NonFiniteResultWarning,
            stacklevel=stacklevel,
        )
    return count


def quiet_numpy() -> np.errstate:
    """NumPy's own overflow / invalid / divide warnings off, where fastsd counts the
    non-finite results itself and says so once (:func:`warn_nonfinite`)."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def warn_nonfinite(values: NDArray[np.float64], what: str = "risks", stacklevel: int = 3) -> int:
    """:func:`report_nonfinite` for a sweep result ``values`` (any shape)."""
    bad = values.size - int(np.count_nonzero(np.isfinite(values)))
    return report_nonfinite(bad, values.size, what, stacklevel + 1)
