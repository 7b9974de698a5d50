"""One spectral decomposition of the design, computed once and reused.

Every quantity in fastsd is a spectral filter on the thin SVD of X::

    X = U diag(s) V^T,      X^T X = V diag(s^2) V^T.

``decompose`` computes it for one problem, X of shape (n, d), or a batch of B
problems of the same shape, X of shape (B, n, d), by the cheaper route:

* ``n >= d``: eigendecomposition of the d x d Gram matrix X^T X (BLAS
  ``dsyrk`` + LAPACK ``dsyevd``, :mod:`fastsd.decomposition.lapack`); U = X V / s
  is formed only when first used;
* ``d > n``: eigendecomposition of the n x n Gram matrix X X^T; V = X^T U / s
  on first use;
* ``method="svd"``: thin SVD of X (slower, but resolves singular values
  down to machine precision times s_max instead of its square root);
  ``method="qr_svd"``: the same accuracy from a thin QR of X and the SVD of
  its small triangle;
* a streamed X (larger than memory): the d x d Gram route over row blocks
  (:mod:`fastsd.decomposition.streamed`).

Numerically zero directions -- s^2 <= max(n, d) eps max(s^2) on the Gram
route, s <= max(n, d) eps max(s) on the SVD routes (the rule of
``numpy.linalg.lstsq``) -- get s, U and V columns of exactly 0, so they
contribute nothing and every estimator is the minimum-norm limit in them.
Values that agree to within the same rounding level are made exactly equal
(repeated eigenvalues).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numpy.typing import ArrayLike

from .._jit import check_threads
from .._typing import FloatArray
from .base import Decomposition, as_float64
from .dense import METHODS, decompose_dense
from .kernel import KernelDecomposition, decompose_features, decompose_kernel
from .streamed import decompose_streamed, is_streamed

__all__ = [
    "Decomposition",
    "KernelDecomposition",
    "as_decomposition",
    "decompose",
    "decompose_kernel",
    "targets_projection",
]


def _is_streamed(X: object) -> bool:
    return type(X) is not np.ndarray and is_streamed(X)


def decompose(
    X: Any,
    y: ArrayLike | None = None,
    *,
    method: str = "auto",
    backend: str | None = None,
    threads: int | None = None,
    block_rows: int | None = None,
    kernel: str | Callable[..., float] | None = None,
    kernel_params: dict[str, Any] | None = None,
) -> Decomposition:
    """Spectral decomposition of X (and projection of y), reusable everywhere.

    Parameters
    ----------
    X : array_like of shape (n, d) or (B, n, d), or a streamed design
        Design matrix, rows are samples; or a batch of B designs of one shape.
        float32 and integer input is upcast to float64 (float64 is read in
        place, never copied). Streamed (larger than memory; read in row
        blocks, see :mod:`fastsd.decomposition.streamed`): a path to a ``.npy`` file, a
        2-D ``numpy.memmap``, a Zarr array, a Dask array, or an iterator of
        row blocks.
    y : array_like of shape (n,) or (B, n), optional
        Targets; when given, z = V^T X^T y is stored so that later calls with
        the same y skip the projection. For a streamed X, in any of the
        streamed forms or in memory.
    method : {"auto", "gram", "svd", "qr_svd"}, default="auto"
        ``"auto"`` and ``"gram"`` eigendecompose the smaller Gram matrix
        (d x d if n >= d, else n x n; always d x d for a streamed X);
        ``"svd"`` uses a thin SVD of X; ``"qr_svd"`` a thin QR of X (of X^T if
        d > n) and the SVD of its triangle -- the SVD's accuracy without
        forming U (in memory only; both copy X once).
    backend : None
        Deprecated, without effect: every route runs BLAS/LAPACK directly
        (several problems in parallel, one BLAS thread each; one problem splits
        its Gram product over the threads). Passing it warns; it will be removed.
    threads : int, optional
        Worker threads (default: Numba's thread count,
        ``numba.get_num_threads()``). Results do not depend on it.
    block_rows : int, optional
        Rows per block for a streamed X (default: about 64 MiB of rows).
    kernel : str or callable, optional
        Kernel ridge instead of linear ridge: a scikit-learn pairwise kernel
        name ("rbf", "laplacian", "polynomial", ...) or a callable, with
        ``kernel_params``; returns :func:`fastsd.decompose_kernel` of K(X, X).

    Returns
    -------
    Decomposition
        ``s2`` (p,), ``V`` (d, p), ``U`` (n, p) with p = min(n, d), batched
        with a leading B axis. The side that the Gram route does not compute
        (U if n >= d, V if d > n) is formed on first access.

    Notes
    -----
    The Gram route costs n d^2 flops (``dsyrk``, the symmetric rank-k update)
    plus ~(4/3 + 2) d^3 for ``dsyevd`` when n >= d; forming U would cost
    another 2 n d^2, which risk and oracle sweeps do not need.

    Examples
    --------
    >>> import numpy as np, fastsd
    >>> X = np.random.default_rng(0).normal(size=(50, 5))
    >>> dec = fastsd.decompose(X)
    >>> dec.s2.shape, dec.V.shape, dec.U.shape
    ((5,), (5, 5), (50, 5))
    """
    if isinstance(X, Decomposition):
        raise TypeError("X is already a Decomposition; pass it directly to other functions")
    if kernel is not None:
        return decompose_features(X, y, kernel, kernel_params)
    if method != "auto" and method not in METHODS:
        raise ValueError(f"method must be 'auto', 'gram', 'svd' or 'qr_svd', got {method!r}")
    if backend is not None:
        if backend not in ("numpy", "numba"):
            raise ValueError(f"backend must be 'numpy' or 'numba', got {backend!r}")
        warnings.warn(
            "decompose(backend=...) has no effect (every route runs the same LAPACK "
            "routines) and will be removed in fastsd 0.3; drop the argument",
            FutureWarning,
            stacklevel=2,
        )
    check_threads(threads)
    count = numba.get_num_threads() if threads is None else threads
    if _is_streamed(X):
        if method in ("svd", "qr_svd"):
            raise ValueError(
                f"method={method!r} needs X in memory; a streamed X uses the "
                "Gram route (method='auto')"
            )
        return decompose_streamed(X, y, threads=count, block_rows=block_rows)
    if block_rows is not None:
        raise ValueError(
            "block_rows applies to a streamed X (a .npy path, np.memmap, Zarr "
            "or Dask array, or an iterator of row blocks), not to an array in memory"
        )
    X = as_float64(X, "X", ndim=(2, 3))
    if X.shape[-2] == 0 or X.shape[-1] == 0:
        raise ValueError(f"X must have at least one sample and one feature, got shape {X.shape}")
    dec = decompose_dense(X, "gram" if method == "auto" else method, count)
    return dec if y is None else dec.with_targets(y)


def as_decomposition(X: Any, name: str = "X") -> Decomposition:
    """Return X if it is a Decomposition, else ``decompose(X)``."""
    if isinstance(X, Decomposition):
        return X
    try:
        return decompose(X)
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        if name != "X":
            msg = msg.replace("X ", f"{name} ", 1)
        raise type(exc)(msg) from None


def targets_projection(dec: Decomposition, y: ArrayLike | None, name: str = "y") -> FloatArray:
    """z for y: reuse ``dec.z`` when y is None, else project y."""
    if y is None:
        if dec.z is None:
            raise ValueError(f"{name} is required: the decomposition was made without y")
        return dec.z
    return dec.project_y(y, name)
