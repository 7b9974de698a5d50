"""Numba configuration shared by every kernel: flags, on-disk cache, threads.

* ``FASTMATH`` allows reassociation and contraction (so reductions vectorize)
  but *not* ``nnan``/``ninf``: NaN and inf propagate exactly as in NumPy.
* Kernels are compiled with ``cache=True`` so a fresh process loads machine
  code from disk instead of compiling (see the user guide, "JIT cost"). Where no cache
  directory is writable (read-only install and home) they are compiled in
  memory instead; a cache that fails to load (corrupted, or written by an
  incompatible Numba) is abandoned with a warning and the call is retried
  without it. Set ``NUMBA_CACHE_DIR`` to move the cache.
* :func:`threads` sets Numba's thread count for a block and restores it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import numba
from numba.core.caching import NullCache

__all__ = [
    "FASTMATH",
    "jit",
    "threads",
    "check_threads",
    "call",
    "cache_dir",
    "single_threaded_blas",
]

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_DISPATCHERS: list[Any] = []

_F = TypeVar("_F", bound=Callable[..., Any])


def jit(*, parallel: bool = False) -> Callable[[_F], _F]:
    """``numba.njit`` with fastsd's flags, an on-disk cache where possible."""

    def decorate(func: _F) -> _F:
        options: dict[str, Any]
        options = dict(parallel=parallel, fastmath=set(FASTMATH), error_model="numpy", nogil=True)
        try:
            dispatcher = numba.njit(cache=True, **options)(func)
        except RuntimeError:  # no writable cache location
            dispatcher = numba.njit(cache=False, **options)(func)
        _DISPATCHERS.append(dispatcher)
        return dispatcher  # type: ignore[no-any-return]  # a Numba dispatcher, called like func

    return decorate


def _disable_cache() -> None:
    for dispatcher in _DISPATCHERS:
        dispatcher._cache = NullCache()


def call(kernel: Callable[..., Any], *args: Any) -> Any:
    """Run a kernel; if it fails while the on-disk cache is in use, retry without it.

    Loading a damaged cache can raise almost anything (unpickling, value or
    OS errors). Inputs reaching a kernel are already validated, so a failure
    is retried once with caching disabled for every fastsd kernel; if the
    retry succeeds the cache was at fault (warned about), otherwise the
    error is genuine and re-raised.
    """
    try:
        return kernel(*args)
    except Exception as exc:
        if all(isinstance(d._cache, NullCache) for d in _DISPATCHERS):
            raise
        _disable_cache()
        result = kernel(*args)
        warnings.warn(
            f"Numba's on-disk cache could not be used ({type(exc).__name__}: {exc}); "
            "fastsd's kernels are compiled in memory for this process",
            RuntimeWarning,
            stacklevel=3,
        )
        return result


def single_threaded_blas() -> AbstractContextManager[Any]:
    """Context: one BLAS thread while Numba's threads each call LAPACK.

    Numba's ``prange`` runs one LAPACK call per thread; a multithreaded BLAS
    underneath would oversubscribe the cores. Uses
    threadpoolctl when it is installed (it comes with the ``sklearn`` and
    ``test`` extras); otherwise the BLAS keeps its own setting
    (``OPENBLAS_NUM_THREADS=1`` has the same effect).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    limits: AbstractContextManager[Any] = threadpool_limits(limits=1, user_api="blas")
    return limits


def cache_dir() -> str:
    """Where compiled kernels are cached (NUMBA_CACHE_DIR or beside the sources)."""
    return os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.path.dirname(__file__), "kernels", "__pycache__"
    )


def check_threads(count: object) -> None:
    """Validate a thread count: None or 1 <= count <= NUMBA_NUM_THREADS."""
    if count is None:
        return
    # set at import from the environment; numba's stubs do not declare it
    limit: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"threads must be an int or None, got {type(count).__name__}")
    if not 1 <= count <= limit:
        raise ValueError(f"threads must be between 1 and {limit} (NUMBA_NUM_THREADS), got {count}")


@contextlib.contextmanager
def threads(count: int | None) -> Iterator[int]:
    """Run a block with ``count`` Numba threads (None: leave as is), then restore.

    Parameters
    ----------
    count : int or None
        1 <= count <= ``numba.config.NUMBA_NUM_THREADS`` (which honours the
        ``NUMBA_NUM_THREADS`` environment variable).
    """
    if count is None:
        current: int = numba.get_num_threads()
        yield current
        return
    check_threads(count)
    previous = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield count
    finally:
        numba.set_num_threads(previous)
