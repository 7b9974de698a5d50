"""The in-memory routes of :func:`fastsd.decompose`, on checked float64 input.

* ``"gram"``: eigendecomposition of the smaller Gram matrix, d x d (X^T X) when
  n >= d, else n x n (X X^T), by BLAS ``dsyrk`` + LAPACK ``dsyevd`` per problem
  (:mod:`fastsd.decomposition.lapack`); the other side is formed on first use;
* ``"svd"``: thin SVD of X;
* ``"qr_svd"``: thin QR of X (of X^T if d > n) and the SVD of its triangle.

Then the rank rule (:func:`fastsd.decomposition.base.rank_rule`). Callers
(:func:`fastsd.decompose`, the block tasks) pass X already checked: float64,
aligned, shape (n, d) or (B, n, d) with n, d >= 1. Non-finite entries are
found here, where they cost nothing (a NaN reaches the Gram diagonal), and
reported with the global problem index (``offset``: the first problem of a block).
"""

from __future__ import annotations

import numpy as np

from .._typing import FloatArray
from .base import Decomposition, finish_gram, raise_nonfinite, rank_rule
from .lapack import blas_threads, gram_eigh_batch

__all__ = ["METHODS", "decompose_dense"]

#: The in-memory routes (``"auto"`` is ``"gram"``).
METHODS = ("gram", "svd", "qr_svd")


def decompose_dense(X: FloatArray, method: str, threads: int, offset: int = 0) -> Decomposition:
    """Decompose a checked float64 X (n, d) or (B, n, d) by ``method`` (see module doc).

    Parameters
    ----------
    X : ndarray of shape (n, d) or (B, n, d)
        float64, aligned, n, d >= 1 (read, never modified or copied on the
        Gram route).
    method : {"gram", "svd", "qr_svd"}
    threads : int
        Worker threads of the Gram route (results do not depend on it).
    offset : int, default=0
        Index of X's first problem in the caller's batch (for error messages).

    Returns
    -------
    Decomposition
    """
    n, d = X.shape[-2:]
    if method == "gram":
        feature_side = n >= d
        s2, vecs = gram_eigh_batch(X.reshape((-1, n, d)), feature_side, threads)
        if not np.all(np.isfinite(s2[:, 0])):
            raise_nonfinite(X, offset=offset)
        s2, vecs = finish_gram(s2, vecs, n, d)
        s2 = s2.reshape(X.shape[:-2] + s2.shape[-1:])
        vecs = vecs.reshape(X.shape[:-2] + vecs.shape[-2:])
        sides = dict(V=vecs) if feature_side else dict(U=vecs)
        return Decomposition(s2=s2, X=X, method="gram", shape=(n, d), **sides)
    U: FloatArray | None
    V: FloatArray | None
    if not np.all(np.isfinite(X)):
        raise_nonfinite(X, offset=offset)
    # one BLAS thread: threaded LAPACK sums in an order set by the thread count
    if method == "svd":
        with blas_threads(1):
            U, s, Vt = np.linalg.svd(X, full_matrices=False)
        V = np.swapaxes(Vt, -1, -2)
    else:
        # thin QR of X (n >= d) or of X^T (d > n), then the SVD of the
        # min(n, d)-square triangle: the SVD's accuracy without an n x p U;
        # the other side is formed on first use, as on the Gram route
        tall = n >= d
        with blas_threads(1):
            R = np.linalg.qr(X if tall else np.swapaxes(X, -1, -2), mode="r")
            _, s, Vrt = np.linalg.svd(R, full_matrices=False)
        U, V = (None, np.swapaxes(Vrt, -1, -2)) if tall else (np.swapaxes(Vrt, -1, -2), None)
    # the SVD knows s to ~eps s_max: the rank rule on s
    s, zero = rank_rule(s, n, d)
    keep = ~zero[..., None, :]
    return Decomposition(
        s2=s * s,
        V=None if V is None else np.where(keep, V, 0.0),
        U=None if U is None else np.where(keep, U, 0.0),
        method=method,
        X=X if U is None or V is None else None,
        shape=(n, d),
    )
