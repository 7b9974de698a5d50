"""Gram matrices and their eigendecompositions at BLAS/LAPACK speed.

The two routines every decomposition is made of, called directly:

* ``dsyrk``: C = A A^T (or A^T A) into one triangle -- half the flops of a
  general product, and no copy of X when X (or X^T) is Fortran-contiguous,
  which a C-ordered (n, d) array viewed as X^T is;
* ``dsyevd``: eigenpairs of a symmetric matrix by divide and conquer, in
  place (what ``scipy.linalg.eigh(driver="evd")`` calls).

They are SciPy's own BLAS/LAPACK (``scipy.linalg.cython_blas`` /
``cython_lapack``), called through ``ctypes``, which releases the GIL: so
several problems of a batch can run in parallel Python threads, one BLAS
thread each (SciPy's Python wrappers hold the GIL, Numba-compiled callers of
``ctypes`` functions cannot be cached on disk). Inputs reaching these
functions are validated float64 arrays; nothing here checks them again.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["blas_threads", "fortran_operand", "syrk", "gram", "syevd_descending", "gram_eigh_batch"]

_P = ctypes.c_void_p
_INT = ctypes.c_int  # SciPy ships LP64 BLAS/LAPACK: 32-bit Fortran integers
_Array = NDArray[np.float64]
_Routine = Callable[..., None]


def _function(module: str, name: str, nargs: int) -> _Routine:
    capsule = __import__(module, fromlist=[name]).__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    address = get_pointer(capsule, get_name(capsule))
    routine: _Routine = ctypes.CFUNCTYPE(None, *([_P] * nargs))(address)
    return routine


@functools.cache
def _routines() -> tuple[_Routine, _Routine]:
    """(dsyrk, dsyevd), resolved on first use (importing scipy.linalg is slow)."""
    return (
        _function("scipy.linalg.cython_blas", "dsyrk", 10),
        _function("scipy.linalg.cython_lapack", "dsyevd", 11),
    )


def _ref(value: float, ctype: Any) -> Any:
    return ctypes.byref(ctype(value))


_CONTROLLER: Any = None


def blas_threads(count: int) -> AbstractContextManager[Any]:
    """Context: SciPy's (and NumPy's) BLAS run ``count`` threads inside, restored after.

    One threadpoolctl controller is made on first use and reused, so entering
    costs microseconds, not the milliseconds of a library scan.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _routines()  # load SciPy's BLAS first, so that the controller sees it
        _CONTROLLER = ThreadpoolController()
    limit: AbstractContextManager[Any] = _CONTROLLER.limit(limits=count, user_api="blas")
    return limit


def _lda(A: _Array) -> int:
    """Leading dimension of a column-major operand, or 0 if BLAS cannot take it."""
    r, c = A.shape
    if r <= 1 or A.strides[0] == 8:
        lda = A.strides[1] // 8 if c > 1 else max(1, r)
        if c <= 1 or (A.strides[1] % 8 == 0 and lda >= max(1, r)):
            return int(max(1, lda))
    return 0


def fortran_operand(X: _Array, feature_side: bool) -> tuple[_Array, bool]:
    """(A, trans) such that ``syrk(A, trans)`` is X^T X (``feature_side``) or X X^T.

    ``A`` is X or X^T as a Fortran-contiguous (rows, k) array -- a view, no
    copy, for C- or Fortran-contiguous X -- and ``trans`` says whether the
    product is A A^T (False) or A^T A (True).
    """
    if _lda(X.T):
        return X.T, not feature_side
    if _lda(X):
        return X, feature_side
    return np.ascontiguousarray(X).T, not feature_side


def syrk(A: _Array, trans: bool, out: _Array | None = None, accumulate: bool = False) -> _Array:
    """Upper triangle of A A^T (``trans=False``) or A^T A, with BLAS ``dsyrk``.

    Parameters
    ----------
    A : float64[r, c], column-major (unit stride down a column; any column
        stride, so a block of rows or columns of a Fortran array is a view)
    trans : bool
    out : float64[m, m], Fortran-contiguous, optional
        m = r (``trans=False``) or c. Only its upper triangle is written.
    accumulate : bool, default=False
        Add to ``out`` (C <- C + A A^T) instead of overwriting it.

    Returns
    -------
    out : float64[m, m], Fortran order; the strict lower triangle is not set.
    """
    r, c = A.shape
    m, k = (c, r) if trans else (r, c)
    if out is None:
        out = np.empty((m, m), order="F")
    if m == 0:
        return out
    if k == 0:
        if not accumulate:
            out[...] = 0.0
        return out
    _routines()[0](
        b"U",
        b"T" if trans else b"N",
        _ref(m, _INT),
        _ref(k, _INT),
        _ref(1.0, ctypes.c_double),
        _P(A.ctypes.data),
        _ref(_lda(A), _INT),
        _ref(1.0 if accumulate else 0.0, ctypes.c_double),
        _P(out.ctypes.data),
        _ref(max(1, m), _INT),
    )
    return out


#: Partial Gram matrices of one problem: contraction chunks of at least
#: max(CHUNK_MIN, 4 m) (shorter ones run dsyrk below its speed), at most
#: MAX_PARTIALS of them, and at most PARTIAL_BYTES of them in all.
CHUNK_MIN = 256
MAX_PARTIALS = 8
PARTIAL_BYTES = 1 << 27


def partial_count(k: int, m: int) -> int:
    """How many partial Gram matrices (chunks of the contraction) one problem uses.

    Depends on the shape only -- never on the thread count -- so results are
    bitwise the same whatever the number of threads.
    """
    return int(
        max(1, min(MAX_PARTIALS, k // max(CHUNK_MIN, 4 * m), PARTIAL_BYTES // (8 * m * m + 1)))
    )


def gram(X: _Array, feature_side: bool, pool: Executor | None = None) -> _Array:
    """X^T X (``feature_side``) or X X^T, upper triangle, Fortran order.

    The contraction (rows of X for X^T X) is cut into ``partial_count``
    chunks; each chunk's Gram is one ``dsyrk`` (on ``pool``'s threads when
    given), and the partial matrices are added in a fixed order.

    Parameters
    ----------
    X : float64[n, d]
    feature_side : bool
    pool : concurrent.futures.Executor, optional

    Returns
    -------
    G : float64[m, m], Fortran order, m = d or n; the strict lower triangle is 0.
    """
    A, trans = fortran_operand(X, feature_side)
    k, m = (A.shape[0], A.shape[1]) if trans else (A.shape[1], A.shape[0])
    parts_count = partial_count(k, m)
    cuts = [k * i // parts_count for i in range(parts_count + 1)]

    def piece(i: int) -> _Array:
        part = A[cuts[i] : cuts[i + 1]] if trans else A[:, cuts[i] : cuts[i + 1]]
        return syrk(part, trans, out=np.zeros((m, m), order="F"))

    if pool is None or parts_count == 1:
        parts = [piece(i) for i in range(parts_count)]
    else:
        parts = list(pool.map(piece, range(parts_count)))
    G = parts[0]
    for part in parts[1:]:
        G += part
    return G


class _EighWork:
    """Workspace of ``dsyevd`` for m x m problems (one per thread)."""

    def __init__(self, m: int) -> None:
        work, iwork, info = np.empty(1), np.empty(1, dtype=np.int32), _INT(0)
        a, w = np.empty((1, 1)), np.empty(1)
        _routines()[1](
            b"V",
            b"U",
            _ref(m, _INT),
            _P(a.ctypes.data),
            _ref(max(1, m), _INT),
            _P(w.ctypes.data),
            _P(work.ctypes.data),
            _ref(-1, _INT),
            _P(iwork.ctypes.data),
            _ref(-1, _INT),
            ctypes.byref(info),
        )
        self.m = m
        self.work = np.empty(max(1, int(work[0])))
        self.iwork = np.empty(max(1, int(iwork[0])), dtype=np.int32)
        self.w = np.empty(m)


def syevd_descending(
    G: _Array, s2_out: _Array, vecs_out: _Array, work: _EighWork | None = None
) -> None:
    """Eigenpairs of symmetric G (upper triangle used), descending, by LAPACK ``dsyevd``.

    Parameters
    ----------
    G : float64[m, m], Fortran-contiguous
        Overwritten (by the eigenvectors in ascending order).
    s2_out : float64[m]
        Eigenvalues, descending.
    vecs_out : float64[m, m]
        Eigenvectors as columns, in the same order.
    work : _EighWork, optional
        Reused workspace (one per thread).

    A non-finite diagonal (NaN/inf in X, or overflow) gives ``s2_out = NaN``
    without calling LAPACK.

    Raises
    ------
    numpy.linalg.LinAlgError
        When LAPACK does not converge (``info > 0``).
    """
    m = G.shape[0]
    if not np.isfinite(np.trace(G)):  # NaN/inf in X (or overflow): the caller says where
        s2_out[:] = np.nan
        return
    work = _EighWork(m) if work is None else work
    info = _INT(0)
    _routines()[1](
        b"V",
        b"U",
        _ref(m, _INT),
        _P(G.ctypes.data),
        _ref(max(1, m), _INT),
        _P(work.w.ctypes.data),
        _P(work.work.ctypes.data),
        _ref(work.work.size, _INT),
        _P(work.iwork.ctypes.data),
        _ref(work.iwork.size, _INT),
        ctypes.byref(info),
    )
    if info.value != 0:
        raise np.linalg.LinAlgError(
            f"LAPACK dsyevd did not converge (info={info.value}) on the Gram matrix"
        )
    s2_out[:] = work.w[::-1]
    vecs_out[:] = G[:, ::-1]


def gram_eigh_batch(X: _Array, feature_side: bool, threads: int) -> tuple[_Array, _Array]:
    """Eigenpairs of X_b^T X_b (``feature_side``) or X_b X_b^T for every b, descending.

    The route follows the shape of one problem -- never the batch size or
    the thread count -- so a problem gives the same bytes in a batch of any
    size, on any number of threads. Every LAPACK call runs on one BLAS thread
    (a threaded ``dsyevd`` sums in an order that depends on the thread count).

    * tiny problems (under ``SERIAL_FLOPS`` each): NumPy's stacked product and
      eigh on the calling thread, no per-problem Python overhead;
    * several problems: ``threads`` workers, each taking whole problems;
    * one problem: its partial Gram matrices on ``threads`` workers (with
      fewer than ``FEW_PARTIALS`` of them, one ``dsyrk`` on ``threads`` BLAS
      threads, which split its output, not its sums), then one ``dsyevd``.

    Parameters
    ----------
    X : float64[B, n, d]
    feature_side : bool
    threads : int

    Returns
    -------
    s2 : float64[B, m]
        NaN for a problem whose Gram diagonal is not finite (NaN/inf in X).
    vecs : float64[B, m, m]
        m = d (``feature_side``) or n.
    """
    B, n, d = X.shape
    m = d if feature_side else n
    s2 = np.empty((B, m))
    vecs = np.empty((B, m, m))
    if n * d * m + 4 * m**3 < SERIAL_FLOPS:  # tiny: NumPy's stacked calls
        with blas_threads(1):
            G = np.swapaxes(X, -1, -2) @ X if feature_side else X @ np.swapaxes(X, -1, -2)
            bad = ~np.isfinite(np.trace(G, axis1=-2, axis2=-1))
            G[bad] = 0.0
            w, v = np.linalg.eigh(G)
        s2[:], vecs[:] = w[..., ::-1], v[..., ::-1]
        s2[bad] = np.nan
        return s2, vecs
    if B == 1:
        if threads > 1 and partial_count(n if feature_side else d, m) < FEW_PARTIALS:
            with blas_threads(threads):  # too few chunks to share out: threaded dsyrk
                G = gram(X[0], feature_side)
        elif threads > 1:
            with blas_threads(1), ThreadPoolExecutor(max_workers=threads) as pool:
                G = gram(X[0], feature_side, pool)
        else:
            with blas_threads(1):
                G = gram(X[0], feature_side)
        with blas_threads(1):
            syevd_descending(G, s2[0], vecs[0])
        return s2, vecs
    workers = max(1, min(threads, B))

    def run(first: int) -> None:
        work = _EighWork(m)
        for b in range(first, B, workers):
            syevd_descending(gram(X[b], feature_side), s2[b], vecs[b], work)

    with blas_threads(1):
        if workers == 1:
            run(0)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for future in [pool.submit(run, first) for first in range(workers)]:
                    future.result()
    return s2, vecs


#: One problem with fewer partial Gram matrices than this runs on threaded BLAS.
FEW_PARTIALS = 4
#: Problems below this many flops each (n d m + 4 m^3) are decomposed through
#: NumPy's stacked calls on the calling thread (threads and per-problem calls
#: would cost more than the work).
SERIAL_FLOPS = 2e5
