"""Input checking shared by every public entry point.

Each helper returns a *new* float64 array (never a view the caller could see
modified), raises ``TypeError`` for the wrong kind of object and ``ValueError``
for a wrong value, always naming the argument and saying how to fix it.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ._config import MAX_RESULT_BYTES
from ._typing import FloatArray


def as_float_array(
    value: Any,
    name: str,
    *,
    ndim: int | Iterable[int] | None = None,
    allow_empty: bool = False,
) -> FloatArray:
    """Return ``value`` as a fresh C-contiguous float64 array, checked finite.

    Parameters
    ----------
    value : array_like
        Anything ``np.asarray`` accepts holding real numbers.
    name : str
        Argument name used in error messages.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    allow_empty : bool, default=False
        Whether an array with a zero-length axis is acceptable.
    """
    try:
        arr = np.array(value, dtype=None, copy=True)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of real numbers ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(
            f"{name} must hold real numbers, got dtype {arr.dtype}; "
            "convert it with np.asarray(..., dtype=float)"
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    arr = arr.astype(np.float64, order="C", copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimension(s), got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one value")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; remove or impute them first")
    return arr


def check_lams(lam: Any, name: str = "lam", allow_empty: bool = False) -> tuple[FloatArray, bool]:
    """Regularization strength(s): finite, >= 0, scalar or 1-D (the one home of "lam >= 0").

    Returns
    -------
    lams : ndarray of shape (L,)
    is_scalar : bool
    """
    arr = as_float_array(lam, name, ndim=(0, 1), allow_empty=allow_empty)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 (ridge penalty), got min {arr.min()!r}")
    return np.atleast_1d(arr), arr.ndim == 0


def check_noise_var(
    noise_var: Any, batch_shape: tuple[int, ...], name: str = "noise_var"
) -> FloatArray:
    """Noise variance sigma^2: scalar or one per problem, finite, >= 0."""
    arr = as_float_array(noise_var, name, ndim=(0, 1))
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 (a variance), got min {arr.min()!r}")
    if arr.ndim == 1:
        if arr.shape != batch_shape:
            raise ValueError(
                f"{name} must be a scalar or have shape {batch_shape} (one per problem), "
                f"got shape {arr.shape}"
            )
    return arr


def check_steps(k: object, name: str = "k") -> int:
    """A number of self-distillation steps: a non-negative Python/NumPy integer."""
    if isinstance(k, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer number of steps, got a bool ({k!r})")
    if not isinstance(k, numbers.Integral):
        if isinstance(k, numbers.Real) and float(k).is_integer():
            raise TypeError(
                f"{name} must be an integer number of steps, got {k!r} (a float); pass int({k!r})"
            )
        raise TypeError(f"{name} must be an integer number of steps, got {type(k).__name__}")
    k = operator.index(k)
    if k < 0:
        raise ValueError(f"{name} must be >= 0, got {k}")
    return k


def check_xi(xi: Any, name: str = "xi") -> FloatArray:
    """Imitation parameters: array whose last axis runs over the k steps."""
    arr = as_float_array(xi, name, allow_empty=True)
    if arr.ndim == 0:
        raise ValueError(
            f"{name} must be a sequence of length k (one value per step), got a scalar; "
            f"pass [{float(arr)!r}] for one step"
        )
    return arr


#: What to do about a sweep result over the limit (the default advice).
SWEEP_FIX = "use fewer lambdas/schedules/steps, or the memory-bounded fastsd.sweep_*_chunked"


def check_result_size(
    func: str,
    shapes: Sequence[Sequence[int]],
    limit: int | None = None,
    *,
    what: str = "the result",
    fix: str = SWEEP_FIX,
) -> int:
    """Raise ValueError when the float64 arrays of ``shapes`` exceed the limit.

    Parameters
    ----------
    func : str
        Name of the public function (for the message).
    shapes : sequence of tuple of int
        Shapes of the arrays the call would allocate.
    limit : int, optional
        Bytes; default :data:`MAX_RESULT_BYTES`.
    what, fix : str
        What the arrays are and how to shrink them (for the message).
    """
    limit = MAX_RESULT_BYTES if limit is None else limit
    need = 8 * sum(math.prod(int(n) for n in shape) for shape in shapes)
    if need > limit:
        plural = " + ".join(str(tuple(int(n) for n in s)) for s in shapes)
        raise ValueError(
            f"{func}: {what} {plural} would need {need / 2**30:,.1f} GiB, over the "
            f"{limit / 2**30:,.1f} GiB limit (fastsd._config.MAX_RESULT_BYTES); {fix}"
        )
    return need


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}


def check_bytes(value: object, name: str = "memory_limit") -> int:
    """A size in bytes: a positive integer, or a string with a unit ("512MiB", "2GB", "1.5GiB")."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        if int(value) > 0:
            return int(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", value)
        if match and match.group(2).lower() in _UNITS:
            number = float(match.group(1)) * _UNITS[match.group(2).lower()]
            if number >= 1:
                return int(number)
    raise ValueError(
        f"{name} must be a positive number of bytes or a size like '2GiB', got {value!r}"
    )
