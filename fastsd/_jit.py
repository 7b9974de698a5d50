"""Numba configuration shared by every kernel: flags, on-disk cache, threads.

* Kernels are compiled with IEEE semantics: no fast-math flag, so no
  reassociation, no reciprocal approximation, no signed-zero liberties and no
  implicit fused multiply-add contraction (the kernels write theirs out:
  :func:`fastsd.filters.fma`). Every sum runs in the order the source writes
  (:func:`fastsd.filters.dot`, lanes in :mod:`fastsd.kernels.spectral`), so a
  result does not depend on how LLVM optimised a compile: fresh compile,
  on-disk cache and any CPU target give the same bytes (user guide,
  "Reproducibility"). NaN and inf propagate exactly as in NumPy.
* Kernels are compiled with ``cache=True`` so a fresh process loads machine
  code from disk instead of compiling (see the user guide, "JIT cost"). Where no cache
  directory is writable (read-only install and home) they are compiled in
  memory instead; a cache that fails to load (corrupted, or written by an
  incompatible Numba) is abandoned with a warning and the call is retried
  without it. Set ``NUMBA_CACHE_DIR`` to move the cache.
* Kernels are serial and release the GIL; :func:`run_chunks` runs one over
  fixed chunks of its work on a pool of Python threads, as many as
  ``numba.get_num_threads()`` (what :func:`threads` sets). Each work item is
  computed by one thread from start to end, so the thread count changes the
  schedule, never the arithmetic.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numba
from numba.core.caching import NullCache

__all__ = [
    "FASTMATH",
    "jit",
    "run_chunks",
    "threads",
    "check_threads",
    "call",
    "cache_dir",
]

#: Private switch for side-by-side benchmarks only: ``FASTSD_LEGACY_FASTMATH=1``
#: compiles the kernels with the fast-math flags of earlier versions (results
#: then depend on the compile; the on-disk cache is not used, so the two kinds of
#: machine code never mix).
_LEGACY = os.environ.get("FASTSD_LEGACY_FASTMATH") == "1"

#: Fast-math flags of every kernel: none (see the module docstring).
FASTMATH: frozenset[str] = (
    frozenset({"nsz", "arcp", "contract", "afn", "reassoc"}) if _LEGACY else frozenset()
)

_DISPATCHERS: list[Any] = []


_F = TypeVar("_F", bound=Callable[..., Any])


def jit(func: _F) -> _F:
    """``numba.njit`` with fastsd's flags, GIL released, an on-disk cache where possible."""
    options: dict[str, Any] = dict(fastmath=set(FASTMATH), error_model="numpy", nogil=True)
    try:
        dispatcher = numba.njit(cache=not _LEGACY, **options)(func)
    except RuntimeError:  # no writable cache location
        dispatcher = numba.njit(cache=False, **options)(func)
    _DISPATCHERS.append(dispatcher)
    return dispatcher  # type: ignore[no-any-return]  # a Numba dispatcher, called like func


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            limit: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
            _POOL = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="fastsd")
        return _POOL


def _forget_pool() -> None:  # a forked child has none of the parent's threads
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def run_chunks(kernel: Callable[..., Any], chunks: int, total: int, *args: Any) -> None:
    """Run ``kernel(*args, start, stop)`` over ``chunks`` ranges covering ``range(total)``.

    The ranges are fixed by ``chunks`` and ``total`` alone; the calling thread
    and up to ``numba.get_num_threads() - 1`` pool threads take them in turn
    (the first on the calling thread alone, so that a kernel is compiled or
    loaded from the cache once). ``kernel`` must write each item's results from
    that item's inputs alone, so the results are the same for any thread count.
    """
    chunks = max(1, min(chunks, total))
    size = -(-total // chunks)
    queue = iter([(start, min(total, start + size)) for start in range(0, total, size)])
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:  # a range goes to exactly one thread
                item = next(queue, None)
            if item is None:
                return
            kernel(*args, *item)

    first = next(queue, None)
    if first is None:
        return
    kernel(*args, *first)
    helpers = min(numba.get_num_threads(), chunks) - 1
    futures = [_pool().submit(work) for _ in range(helpers)]
    try:
        work()
    finally:  # every range is done (or has failed) before the results are used
        for future in futures:
            future.result()


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
