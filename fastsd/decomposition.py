"""One spectral decomposition of the design, computed once and reused.

Every quantity in fastsd is a spectral filter on the thin SVD of X::

    X = U diag(s) V^T,      X^T X = V diag(s^2) V^T.

``decompose`` computes it for one problem, X of shape (n, d), or a batch of B
problems of the same shape, X of shape (B, n, d), by the cheaper route:

* ``n >= d``: eigendecomposition of the d x d Gram matrix X^T X, then
  U = X V / s;
* ``d > n``: eigendecomposition of the n x n Gram matrix X X^T, then
  V = X^T U / s;
* ``method="svd"``: thin SVD of X (slower, but resolves singular values
  down to machine precision times s_max instead of its square root).

Numerically zero directions -- s^2 <= max(n, d) eps max(s^2) on the Gram
route, s <= max(n, d) eps max(s) on the SVD route (the rule of
``numpy.linalg.lstsq``) -- get s, U and V columns of exactly 0, so they
contribute nothing and every estimator is the minimum-norm limit in them.
Values that agree to within the same rounding level are made exactly equal
(repeated eigenvalues).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._jit import call, single_threaded_blas, threads as thread_count
from ._validation import as_float_array
from .kernels.decompose import gram_eigh

__all__ = ["Decomposition", "decompose", "as_decomposition"]


@dataclass(frozen=True, eq=False)
class Decomposition:
    """Thin SVD of a design matrix (or of a batch of them).

    Attributes
    ----------
    s2 : ndarray of shape (p,) or (B, p)
        Eigenvalues of X^T X (squared singular values), descending, with
        numerically zero ones set to exactly 0. ``p = min(n, d)``.
    V : ndarray of shape (d, p) or (B, d, p)
        Right singular vectors (eigenvectors of X^T X); zero columns where
        ``s2 == 0``.
    U : ndarray of shape (n, p) or (B, n, p)
        Left singular vectors; zero columns where ``s2 == 0``.
    z : ndarray of shape (p,) or (B, p), or None
        V^T X^T y = s * (U^T y) when ``y`` was given to :func:`decompose`.
    y_norm2 : float or ndarray of shape (B,), or None
        ||y||^2 when ``y`` was given (used for residuals outside range(U)).
    """

    s2: np.ndarray
    V: np.ndarray
    U: np.ndarray
    z: np.ndarray | None = None
    y_norm2: np.ndarray | None = None
    method: str = field(default="gram")

    @property
    def batched(self) -> bool:
        """True when this holds a batch of B problems."""
        return self.s2.ndim == 2

    @property
    def batch_shape(self) -> tuple:
        """``(B,)`` for a batch, ``()`` for one problem."""
        return self.s2.shape[:-1]

    @property
    def n_samples(self) -> int:
        return self.U.shape[-2]

    @property
    def n_features(self) -> int:
        return self.V.shape[-2]

    @property
    def s(self) -> np.ndarray:
        """Singular values, shape (p,) or (B, p)."""
        return np.sqrt(self.s2)

    @property
    def rank(self) -> np.ndarray:
        """Numerical rank (number of nonzero singular values), int or (B,)."""
        return np.count_nonzero(self.s2 > 0, axis=-1)

    def subset(self, index):
        """The decomposition of the problems ``index`` (a slice or indices) of a batch."""
        if not self.batched:
            raise ValueError("subset needs a batched Decomposition (X of shape (B, n, d))")
        pick = (lambda a: None if a is None else a[index])
        return Decomposition(s2=self.s2[index], V=self.V[index], U=self.U[index],
                             z=pick(self.z), y_norm2=pick(self.y_norm2), method=self.method)

    def project_y(self, y, name="y"):
        """z = V^T X^T y = s * (U^T y) for new targets, shape (p,) or (B, p)."""
        y = as_float_array(y, name, ndim=(1, 2))
        expected = self.batch_shape + (self.n_samples,)
        if y.shape != expected:
            raise ValueError(f"{name} must have shape {expected} to match X, got {y.shape}")
        return np.sqrt(self.s2) * np.einsum("...np,...n->...p", self.U, y)

    @property
    def eval_width(self) -> int:
        """Columns an evaluation input must have (d; see :meth:`eval_basis`)."""
        return self.n_features

    def eval_basis(self, X_eval):
        """W = X_eval V, shape ([B,] n_eval, p): predictions of V coef are W coef.

        The evaluation interface every route uses (kernel decompositions map
        new inputs through the cross-kernel instead, see :mod:`fastsd.kernel_ridge`).
        """
        return X_eval @ self.V

    def project_theta(self, theta, name="theta_star"):
        """t = V^T theta, shape (p,) or (B, p)."""
        theta = as_float_array(theta, name, ndim=(1, 2))
        expected = self.batch_shape + (self.n_features,)
        if theta.shape != expected:
            raise ValueError(
                f"{name} must have shape {expected} to match X, got {theta.shape}"
            )
        return np.einsum("...dp,...d->...p", self.V, theta)


def _rank_cutoff(values, n, d):
    """Numerically-zero threshold max(n, d) eps max(values), per problem."""
    top = np.max(values, axis=-1, keepdims=True)
    return max(n, d) * np.finfo(np.float64).eps * top


def _merge_repeated(s2, tol):
    """Give eigenvalues that agree to within ``tol`` (their rounding error) one value.

    ``s2`` is sorted descending along its last axis; each run of neighbours
    closer than ``tol`` is replaced by its mean, so a repeated eigenvalue is
    repeated exactly (spectral filters cannot separate it, and the optimal-xi
    solver then sees one node, not a cluster of nearly equal ones).
    """
    p = s2.shape[-1]
    flat = s2.reshape(-1, p)
    gap = -np.diff(flat, axis=-1) > tol.reshape(-1, 1)
    labels = np.concatenate([np.zeros((flat.shape[0], 1), dtype=np.int64),
                             np.cumsum(gap, axis=-1)], axis=-1)
    labels += p * np.arange(flat.shape[0])[:, None]
    sums = np.bincount(labels.ravel(), weights=flat.ravel(), minlength=flat.size)
    counts = np.bincount(labels.ravel(), minlength=flat.size)
    return (sums[labels] / counts[labels]).reshape(s2.shape)


def _gram_eigh(X, feature_side, backend):
    """Eigenpairs of the smaller Gram matrix, descending."""
    if backend == "numba" and X.ndim == 3:
        m = X.shape[-1] if feature_side else X.shape[-2]
        s2 = np.empty(X.shape[:1] + (m,))
        vecs = np.empty(X.shape[:1] + (m, m))
        with single_threaded_blas():
            call(gram_eigh, X, feature_side, s2, vecs)
        return s2, vecs
    G = np.swapaxes(X, -1, -2) @ X if feature_side else X @ np.swapaxes(X, -1, -2)
    s2, vecs = np.linalg.eigh(G)
    return s2[..., ::-1], vecs[..., ::-1]


def decompose(X, y=None, *, method="auto", backend="numpy", threads=None, kernel=None,
              kernel_params=None):
    """Spectral decomposition of X (and projection of y), reusable everywhere.

    Parameters
    ----------
    X : array_like of shape (n, d) or (B, n, d)
        Design matrix, rows are samples; or a batch of B designs of one shape.
        float32 and integer input is upcast to float64.
    y : array_like of shape (n,) or (B, n), optional
        Targets; when given, z = V^T X^T y is stored so that later calls with
        the same y skip the projection.
    method : {"auto", "gram", "svd"}, default="auto"
        ``"auto"`` and ``"gram"`` eigendecompose the smaller Gram matrix
        (d x d if n >= d, else n x n); ``"svd"`` uses a thin SVD of X.
    backend : {"numpy", "numba"}, default="numpy"
        For a batch with the Gram route, ``"numba"`` decomposes the B problems
        in parallel (one LAPACK eigh per thread) instead of NumPy's stacked eigh.
    threads : int, optional
        Numba threads for ``backend="numba"`` (restored afterwards).
    kernel : str or callable, optional
        Kernel ridge instead of linear ridge: a scikit-learn pairwise kernel
        name ("rbf", "laplacian", "polynomial", ...) or a callable, with
        ``kernel_params``; returns :func:`fastsd.decompose_kernel` of K(X, X).

    Returns
    -------
    Decomposition
        ``s2`` (p,), ``V`` (d, p), ``U`` (n, p) with p = min(n, d), batched
        with a leading B axis.

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
        from .kernel_ridge import decompose_features

        return decompose_features(X, y, kernel, kernel_params)
    if method not in ("auto", "gram", "svd"):
        raise ValueError(f"method must be 'auto', 'gram' or 'svd', got {method!r}")
    if backend not in ("numpy", "numba"):
        raise ValueError(f"backend must be 'numpy' or 'numba', got {backend!r}")
    X = as_float_array(X, "X", ndim=(2, 3))
    n, d = X.shape[-2:]
    if n == 0 or d == 0:
        raise ValueError(f"X must have at least one sample and one feature, got shape {X.shape}")

    if method == "svd":
        U, s, Vt = np.linalg.svd(X, full_matrices=False)
        s2 = s * s
        V = np.swapaxes(Vt, -1, -2)
    else:
        feature_side = n >= d
        with thread_count(threads):
            s2, vecs = _gram_eigh(X, feature_side, backend)
        s2 = np.maximum(s2, 0.0)
        other = X if feature_side else np.swapaxes(X, -1, -2)
        with np.errstate(divide="ignore", invalid="ignore"):
            partner = (other @ vecs) / np.sqrt(s2)[..., None, :]
        V, U = (vecs, partner) if feature_side else (partner, vecs)

    # Rank cutoff and merging of repeated values at the route's rounding level:
    # the Gram route knows s^2 to ~eps s_max^2, the SVD route s to ~eps s_max.
    values = np.sqrt(s2) if method == "svd" else s2
    cutoff = _rank_cutoff(values, n, d)
    zero = values <= cutoff
    values = _merge_repeated(np.where(zero, 0.0, values), cutoff)
    s2 = values * values if method == "svd" else values
    keep = ~zero[..., None, :]
    U = np.where(keep, U, 0.0)
    V = np.where(keep, V, 0.0)
    dec = Decomposition(
        s2=np.ascontiguousarray(s2),
        V=np.ascontiguousarray(V),
        U=np.ascontiguousarray(U),
        method="svd" if method == "svd" else "gram",
    )
    if y is None:
        return dec
    z = dec.project_y(y)
    y_arr = as_float_array(y, "y", ndim=(1, 2))
    return Decomposition(
        s2=dec.s2, V=dec.V, U=dec.U, z=z, y_norm2=np.sum(y_arr * y_arr, axis=-1),
        method=dec.method,
    )


def as_decomposition(X, name="X"):
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


def targets_projection(dec, y, name="y"):
    """z for y: reuse ``dec.z`` when y is None, else project y."""
    if y is None:
        if dec.z is None:
            raise ValueError(f"{name} is required: the decomposition was made without y")
        return dec.z
    return dec.project_y(y, name)
