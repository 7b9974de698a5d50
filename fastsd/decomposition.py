"""One spectral decomposition of the design, computed once and reused.

Every quantity in fastsd is a spectral filter on the thin SVD of X::

    X = U diag(s) V^T,      X^T X = V diag(s^2) V^T.

``decompose`` computes it for one problem, X of shape (n, d), or a batch of B
problems of the same shape, X of shape (B, n, d), by the cheaper route:

* ``n >= d``: eigendecomposition of the d x d Gram matrix X^T X (BLAS
  ``dsyrk`` + LAPACK ``dsyevd``, :mod:`fastsd.kernels.decompose`); U = X V / s
  is formed only when first used;
* ``d > n``: eigendecomposition of the n x n Gram matrix X X^T; V = X^T U / s
  on first use;
* ``method="svd"``: thin SVD of X (slower, but resolves singular values
  down to machine precision times s_max instead of its square root);
  ``method="qr_svd"``: the same accuracy from a thin QR of X and the SVD of
  its small triangle;
* a streamed X (larger than memory): the d x d Gram route over row blocks
  (:mod:`fastsd.streaming`).

Numerically zero directions -- s^2 <= max(n, d) eps max(s^2) on the Gram
route, s <= max(n, d) eps max(s) on the SVD routes (the rule of
``numpy.linalg.lstsq``) -- get s, U and V columns of exactly 0, so they
contribute nothing and every estimator is the minimum-norm limit in them.
Values that agree to within the same rounding level are made exactly equal
(repeated eigenvalues).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn, cast

import numba
import numpy as np
from numpy.typing import ArrayLike

from ._typing import FloatArray, IntArray
from ._jit import check_threads
from ._validation import as_float_array
from .kernels.decompose import blas_threads, gram_eigh_batch

__all__ = ["Decomposition", "decompose", "as_decomposition"]


class Decomposition:
    """Thin SVD of a design matrix (or of a batch of them).

    Only the eigen side is computed by :func:`decompose`: V (the d x d Gram
    route, n >= d, and every streamed X) or U (the n x n Gram route, d > n).
    The other side, ``U = X V / s`` or ``V = X^T U / s``, costs as much as
    the Gram matrix itself and is computed on first access (one more pass
    over a streamed X), then kept. Risk and oracle sweeps never need it:
    ``project_theta`` and ``project_y`` work from whichever side is there.
    X must not be modified while the decomposition is in use.

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
    method : {"gram", "svd", "qr_svd"}
        The route that made it (see :func:`decompose`).
    """

    # set once in __init__ through object.__setattr__ (the instance is read-only)
    s2: FloatArray
    z: FloatArray | None
    y_norm2: float | FloatArray | None
    method: str
    _V: FloatArray | None
    _U: FloatArray | None
    _X: Any  # ndarray in memory, or a streamed source (fastsd.streaming)
    _shape: tuple[int, int]

    def __init__(
        self,
        s2: FloatArray,
        V: FloatArray | None = None,
        U: FloatArray | None = None,
        z: FloatArray | None = None,
        y_norm2: float | FloatArray | None = None,
        method: str = "gram",
        *,
        X: Any = None,
        shape: Sequence[int] | None = None,
    ) -> None:
        if V is None and U is None:
            raise ValueError("a Decomposition needs V or U")
        if (V is None or U is None) and X is None:
            raise ValueError("a Decomposition with only one of V, U needs X to compute the other")
        if shape is None:
            shape = (
                (U.shape[-2] if U is not None else X.shape[-2]),
                (V.shape[-2] if V is not None else X.shape[-1]),
            )
        for key, value in dict(
            s2=s2, _V=V, _U=U, z=z, y_norm2=y_norm2, method=method, _X=X, _shape=tuple(shape)
        ).items():
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"Decomposition is read-only: cannot set {key!r}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(method={self.method!r}, batch_shape={self.batch_shape}, "
            f"n_samples={self.n_samples}, n_features={self.n_features}, "
            f"rank={self.rank.tolist()}, y={'stored' if self.z is not None else 'no'})"
        )

    @property
    def V(self) -> FloatArray:
        """Right singular vectors, shape (d, p) or (B, d, p) (computed on first use if d > n)."""
        if self._V is None:
            assert self._U is not None  # __init__ requires one side
            object.__setattr__(self, "_V", self._partner(self._U, transpose=True))
        assert self._V is not None
        return self._V

    @property
    def U(self) -> FloatArray:
        """Left singular vectors, shape (n, p) or (B, n, p) (computed on first use if n >= d)."""
        if self._U is None:
            assert self._V is not None  # __init__ requires one side
            object.__setattr__(self, "_U", self._partner(self._V, transpose=False))
        assert self._U is not None
        return self._U

    def _partner(self, vecs: FloatArray, transpose: bool) -> FloatArray:
        """X vecs / s (or X^T vecs / s), zero where s == 0."""
        if hasattr(self._X, "matmul"):  # a streamed source: one more pass over X
            partner: FloatArray = self._X.matmul(vecs, self.s2)
            return partner
        X = np.swapaxes(self._X, -1, -2) if transpose else self._X
        out: FloatArray = X @ vecs
        s = np.sqrt(self.s2)[..., None, :]
        return cast(FloatArray, np.divide(out, s, out=out, where=s > 0))

    @property
    def batched(self) -> bool:
        """True when this holds a batch of B problems."""
        return self.s2.ndim == 2

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """``(B,)`` for a batch, ``()`` for one problem."""
        return self.s2.shape[:-1]

    @property
    def n_samples(self) -> int:
        return self._shape[0]

    @property
    def n_features(self) -> int:
        return self._shape[1]

    @property
    def s(self) -> FloatArray:
        """Singular values, shape (p,) or (B, p)."""
        return np.sqrt(self.s2)

    @property
    def rank(self) -> IntArray:
        """Numerical rank (number of nonzero singular values), int or (B,)."""
        return cast(IntArray, np.count_nonzero(self.s2 > 0, axis=-1))

    def subset(self, index: Any) -> Decomposition:
        """The decomposition of the problems ``index`` (a slice or indices) of a batch."""
        if not self.batched:
            raise ValueError("subset needs a batched Decomposition (X of shape (B, n, d))")
        pick: Callable[[Any], Any] = lambda a: None if a is None else a[index]
        return Decomposition(
            s2=self.s2[index],
            V=pick(self._V),
            U=pick(self._U),
            z=pick(self.z),
            y_norm2=pick(self.y_norm2),
            method=self.method,
            X=pick(self._X),
            shape=self._shape,
        )

    def project_y(self, y: ArrayLike, name: str = "y") -> FloatArray:
        """z = V^T X^T y = s * (U^T y) for new targets, shape (p,) or (B, p)."""
        if hasattr(self._X, "matmul"):
            z: FloatArray = self._X.project_y(y, self.V, name)
            return z
        y = as_float_array(y, name, ndim=(1, 2))
        expected = self.batch_shape + (self.n_samples,)
        if y.shape != expected:
            raise ValueError(f"{name} must have shape {expected} to match X, got {y.shape}")
        if self._U is not None:
            return cast(FloatArray, np.sqrt(self.s2) * np.einsum("...np,...n->...p", self._U, y))
        assert self._V is not None  # one side is always there
        Xty: FloatArray = (y[..., None, :] @ self._X)[..., 0, :]  # BLAS, one pass over X
        return (Xty[..., None, :] @ self._V)[..., 0, :]

    @property
    def eval_width(self) -> int:
        """Columns an evaluation input must have (d; see :meth:`eval_basis`)."""
        return self.n_features

    def eval_basis(self, X_eval: FloatArray) -> FloatArray:
        """W = X_eval V, shape ([B,] n_eval, p): predictions of V coef are W coef.

        The evaluation interface every route uses (kernel decompositions map
        new inputs through the cross-kernel instead, see :mod:`fastsd.kernel_ridge`).
        """
        return X_eval @ self.V

    def project_theta(self, theta: ArrayLike, name: str = "theta_star") -> FloatArray:
        """t = V^T theta, shape (p,) or (B, p)."""
        theta = as_float_array(theta, name, ndim=(1, 2))
        expected = self.batch_shape + (self.n_features,)
        if theta.shape != expected:
            raise ValueError(f"{name} must have shape {expected} to match X, got {theta.shape}")
        if self._V is not None:
            return cast(FloatArray, np.einsum("...dp,...d->...p", self._V, theta))
        # V^T theta = U^T X theta / s: no d x p matrix formed
        assert self._U is not None  # one side is always there
        t: FloatArray
        t = np.einsum("...np,...n->...p", self._U, (self._X @ theta[..., None])[..., 0])
        s = np.sqrt(self.s2)
        return cast(FloatArray, np.divide(t, s, out=t, where=s > 0))


def _rank_cutoff(values: FloatArray, n: int, d: int) -> FloatArray:
    """Numerically-zero threshold max(n, d) eps max(values), per problem."""
    top = np.max(values, axis=-1, keepdims=True)
    return cast(FloatArray, max(n, d) * np.finfo(np.float64).eps * top)


def _merge_repeated(s2: FloatArray, tol: FloatArray) -> FloatArray:
    """Give eigenvalues that agree to within ``tol`` (their rounding error) one value.

    ``s2`` is sorted descending along its last axis; each run of neighbours
    closer than ``tol`` is replaced by its mean, so a repeated eigenvalue is
    repeated exactly (spectral filters cannot separate it, and the optimal-xi
    solver then sees one node, not a cluster of nearly equal ones).
    """
    p = s2.shape[-1]
    flat = s2.reshape(-1, p)
    gap = -np.diff(flat, axis=-1) > tol.reshape(-1, 1)
    labels = np.concatenate(
        [np.zeros((flat.shape[0], 1), dtype=np.int64), np.cumsum(gap, axis=-1)], axis=-1
    )
    labels += p * np.arange(flat.shape[0])[:, None]
    sums = np.bincount(labels.ravel(), weights=flat.ravel(), minlength=flat.size)
    counts = np.bincount(labels.ravel(), minlength=flat.size)
    return cast(FloatArray, (sums[labels] / counts[labels]).reshape(s2.shape))


def _as_float64(X: ArrayLike, name: str, ndim: tuple[int, ...]) -> FloatArray:
    """X as float64 without copying float64 input (it is only read), checked."""
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of real numbers ({exc})") from None
    if arr.dtype != np.float64:
        return as_float_array(arr, name, ndim=ndim)
    if arr.ndim not in ndim:
        want = " or ".join(str(a) for a in ndim)
        raise ValueError(f"{name} must have {want} dimension(s), got shape {arr.shape}")
    if not arr.flags.aligned:
        # e.g. unpickled out of band (Dask): NumPy would skip BLAS and round differently
        return np.array(arr)
    return arr


def raise_nonfinite(X: FloatArray, name: str = "X", where: str = "") -> NoReturn:
    """Say where X holds NaN/inf (seen on the Gram diagonal), or that X^T X overflows."""
    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        at = ", ".join(
            f"{axis} {int(i)}"
            for axis, i in zip(("problem", "row", "column")[3 - X.ndim :], bad[0])
        )
        raise ValueError(
            f"{name}{where} contains NaN or infinite values (first at {at}); "
            "remove or impute them first"
        )
    raise ValueError(
        f"{name}{where} is too large: its Gram matrix overflows float64; rescale {name}"
    )


def finish_gram(s2: FloatArray, vecs: FloatArray, n: int, d: int) -> tuple[FloatArray, FloatArray]:
    """Rank cutoff and repeat merging of a Gram route's eigenpairs, in place.

    ``s2`` (..., m) descending, ``vecs`` (..., m, m); returns the first
    p = min(n, d) of them: (s2 (..., p), vecs (..., m, p)).
    """
    p = min(n, d)
    s2, vecs = s2[..., :p], vecs[..., :p]
    np.maximum(s2, 0.0, out=s2)
    cutoff = _rank_cutoff(s2, n, d)
    zero = s2 <= cutoff
    s2 = _merge_repeated(np.where(zero, 0.0, s2), cutoff)
    if zero.any():  # usually none: no pass over the vectors
        vecs[np.broadcast_to(zero[..., None, :], vecs.shape)] = 0.0
    return s2, vecs


def _is_streamed(X: object) -> bool:
    if type(X) is np.ndarray:
        return False
    from .streaming import is_streamed

    return is_streamed(X)


def decompose(
    X: Any,
    y: ArrayLike | None = None,
    *,
    method: str = "auto",
    backend: str = "numpy",
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
        blocks, see :mod:`fastsd.streaming`): a path to a ``.npy`` file, a
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
    backend : {"numpy", "numba"}, default="numpy"
        Both run BLAS ``dsyrk`` + LAPACK ``dsyevd`` per problem; several
        problems run in parallel (one BLAS thread each), one problem splits
        its Gram product over the threads. ``"numba"`` is kept for earlier
        callers and gives the same result.
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
        from .kernel_ridge import decompose_features

        return decompose_features(X, y, kernel, kernel_params)
    if method not in ("auto", "gram", "svd", "qr_svd"):
        raise ValueError(f"method must be 'auto', 'gram', 'svd' or 'qr_svd', got {method!r}")
    if backend not in ("numpy", "numba"):
        raise ValueError(f"backend must be 'numpy' or 'numba', got {backend!r}")
    check_threads(threads)
    count = numba.get_num_threads() if threads is None else threads
    if _is_streamed(X):
        from .streaming import decompose_streamed

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
    X = _as_float64(X, "X", ndim=(2, 3))
    n, d = X.shape[-2:]
    if n == 0 or d == 0:
        raise ValueError(f"X must have at least one sample and one feature, got shape {X.shape}")

    if method in ("svd", "qr_svd"):
        U: FloatArray | None
        V: FloatArray | None
        if not np.all(np.isfinite(X)):
            raise_nonfinite(X)
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
        # the SVD knows s to ~eps s_max: cutoff and merging on s
        cutoff = _rank_cutoff(s, n, d)
        zero = s <= cutoff
        s = _merge_repeated(np.where(zero, 0.0, s), cutoff)
        keep = ~zero[..., None, :]
        dec = Decomposition(
            s2=s * s,
            V=None if V is None else np.where(keep, V, 0.0),
            U=None if U is None else np.where(keep, U, 0.0),
            method=method,
            X=X if U is None or V is None else None,
            shape=(n, d),
        )
    else:
        feature_side = n >= d
        s2, vecs = gram_eigh_batch(X.reshape((-1, n, d)), feature_side, count)
        if not np.all(np.isfinite(s2[:, 0])):
            raise_nonfinite(X)
        s2, vecs = finish_gram(s2, vecs, n, d)
        s2, vecs = (
            s2.reshape(X.shape[:-2] + s2.shape[-1:]),
            vecs.reshape(X.shape[:-2] + vecs.shape[-2:]),
        )
        sides = dict(V=vecs) if feature_side else dict(U=vecs)
        dec = Decomposition(s2=s2, X=X, method="gram", shape=(n, d), **sides)
    if y is None:
        return dec
    z = dec.project_y(y)
    y_arr = as_float_array(y, "y", ndim=(1, 2))
    return Decomposition(
        s2=dec.s2,
        V=dec._V,
        U=dec._U,
        z=z,
        y_norm2=np.sum(y_arr * y_arr, axis=-1),
        method=dec.method,
        X=dec._X,
        shape=dec._shape,
    )


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
