"""fastsd's warnings and exceptions, in one place.

Every public one is importable from here (and the most used from ``fastsd``).
"""

from __future__ import annotations

__all__ = ["ChecksumError", "ConfigError", "IllConditionedXiWarning", "TuningWarning"]


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
