"""Batched Gram eigendecompositions, one problem per parallel iteration."""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit


@jit(parallel=True)
def gram_eigh(X, feature_side, s2, vecs):
    """Eigendecompose X_b^T X_b (``feature_side``) or X_b X_b^T for every b.

    Parameters
    ----------
    X : float64[B, n, d]
    feature_side : bool
    s2 : float64[B, m]
        Output eigenvalues, descending (m = d or n).
    vecs : float64[B, m, m]
        Output eigenvectors as columns, in the same order.
    """
    for b in prange(X.shape[0]):
        Xb = X[b]
        if feature_side:
            G = np.dot(Xb.T, Xb)
        else:
            G = np.dot(Xb, Xb.T)
        w, v = np.linalg.eigh(G)
        m = w.shape[0]
        for j in range(m):
            s2[b, j] = w[m - 1 - j]
            for i in range(m):
                vecs[b, i, j] = v[i, m - 1 - j]
