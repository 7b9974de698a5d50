"""The decomposition value type and the rank rule shared by every route.

:class:`Decomposition` holds the thin SVD of a design (or of a batch of
designs); :func:`rank_cutoff`, :func:`merge_repeated` and :func:`finish_gram`
are the one home of the rule that zeroes numerically-null directions and
makes repeated eigenvalues exactly equal (used by the in-memory, streamed and
kernel routes alike).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Self, cast

import numpy as np
from numpy.typing import ArrayLike

from .._typing import BoolArray, FloatArray, IntArray
from .._validation import as_float_array

__all__ = [
    "Decomposition",
    "as_float64",
    "finish_gram",
    "merge_repeated",
    "raise_nonfinite",
    "rank_cutoff",
    "rank_rule",
    "zero_columns",
]


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
    _X: Any  # ndarray in memory, or a streamed source (fastsd.decomposition.streamed)
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

    def project_y(self, y: ArrayLike, name: str = "y", *, check: bool = True) -> FloatArray:
        """z = V^T X^T y = s * (U^T y) for new targets, shape (p,) or (B, p).

        ``check=False``: y is already a float64 array of shape ([B,] n).
        """
        if hasattr(self._X, "matmul"):
            z: FloatArray = self._X.project_y(y, self.V, name)
            return z
        if check:
            y = as_float_array(y, name, ndim=(1, 2))
            expected = self.batch_shape + (self.n_samples,)
            if y.shape != expected:
                raise ValueError(f"{name} must have shape {expected} to match X, got {y.shape}")
        y = cast(FloatArray, y)
        if self._U is not None:
            return cast(FloatArray, np.sqrt(self.s2) * np.einsum("...np,...n->...p", self._U, y))
        assert self._V is not None  # one side is always there
        Xty: FloatArray = (y[..., None, :] @ self._X)[..., 0, :]  # BLAS, one pass over X
        return (Xty[..., None, :] @ self._V)[..., 0, :]

    def with_targets(self, y: ArrayLike) -> Self:
        """A copy that stores z = V^T X^T y and ||y||^2 for targets ``y`` ([B,] n)."""
        z = self.project_y(y)
        y_arr = as_float_array(y, "y", ndim=(1, 2))
        out = copy.copy(self)
        object.__setattr__(out, "z", z)
        object.__setattr__(out, "y_norm2", np.sum(y_arr * y_arr, axis=-1))
        return out

    @property
    def eval_width(self) -> int:
        """Columns an evaluation input must have (d; see :meth:`eval_basis`)."""
        return self.n_features

    def eval_basis(self, X_eval: FloatArray) -> FloatArray:
        """W = X_eval V, shape ([B,] n_eval, p): predictions of V coef are W coef.

        The evaluation interface every route uses (kernel decompositions map
        new inputs through the cross-kernel instead, see :mod:`fastsd.decomposition.kernel`).
        """
        return X_eval @ self.V

    def project_theta(
        self, theta: ArrayLike, name: str = "theta_star", *, check: bool = True
    ) -> FloatArray:
        """t = V^T theta, shape (p,) or (B, p).

        ``check=False``: theta is already a float64 array of shape ([B,] d).
        """
        if check:
            theta = as_float_array(theta, name, ndim=(1, 2))
            expected = self.batch_shape + (self.n_features,)
            if theta.shape != expected:
                raise ValueError(f"{name} must have shape {expected} to match X, got {theta.shape}")
        theta = cast(FloatArray, theta)
        if self._V is not None:
            return cast(FloatArray, np.einsum("...dp,...d->...p", self._V, theta))
        # V^T theta = U^T X theta / s: no d x p matrix formed
        assert self._U is not None  # one side is always there
        t: FloatArray
        t = np.einsum("...np,...n->...p", self._U, (self._X @ theta[..., None])[..., 0])
        s = np.sqrt(self.s2)
        return cast(FloatArray, np.divide(t, s, out=t, where=s > 0))


def rank_cutoff(values: FloatArray, n: int, d: int) -> FloatArray:
    """Numerically-zero threshold max(n, d) eps max(values), per problem."""
    top = np.max(values, axis=-1, keepdims=True)
    return cast(FloatArray, max(n, d) * np.finfo(np.float64).eps * top)


def merge_repeated(s2: FloatArray, tol: FloatArray) -> FloatArray:
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


def as_float64(X: ArrayLike, name: str, ndim: tuple[int, ...]) -> FloatArray:
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
    if arr.size == 0:  # the message of as_float_array, which checks other dtypes
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one value")
    if not arr.flags.aligned:
        # e.g. unpickled out of band (Dask): NumPy would skip BLAS and round differently
        return np.array(arr)
    return arr


def raise_nonfinite(X: FloatArray, name: str = "X", where: str = "", offset: int = 0) -> NoReturn:
    """Say where X holds NaN/inf (seen on the Gram diagonal), or that X^T X overflows.

    ``offset`` is the global index of X's first problem when X is a block of a batch.
    """
    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        first = [int(i) for i in bad[0]]
        if X.ndim == 3:
            first[0] += offset
        at = ", ".join(
            f"{axis} {i}" for axis, i in zip(("problem", "row", "column")[3 - X.ndim :], first)
        )
        raise ValueError(
            f"{name}{where} contains NaN or infinite values (first at {at}); "
            "remove or impute them first"
        )
    raise ValueError(
        f"{name}{where} is too large: its Gram matrix overflows float64; rescale {name}"
    )


def rank_rule(
    values: FloatArray, n: int, d: int, cutoff: FloatArray | None = None
) -> tuple[FloatArray, BoolArray]:
    """The rank rule: numerically zero values become 0, near-repeats one value.

    Parameters
    ----------
    values : ndarray of shape (..., p)
        Descending eigenvalues of a Gram or kernel matrix, or singular values.
    n, d : int
        Shape of the design (the cutoff is ``max(n, d) eps max(values)``).
    cutoff : ndarray of shape (..., 1), optional
        A cutoff computed by the caller with :func:`rank_cutoff`.

    Returns
    -------
    values : ndarray of shape (..., p)
        Values ``<= cutoff`` set to exactly 0 and runs closer than the cutoff
        merged (:func:`merge_repeated`).
    zero : ndarray of bool, shape (..., p)
        The directions set to 0 (their vectors must be zeroed by the caller).
    """
    cutoff = rank_cutoff(values, n, d) if cutoff is None else cutoff
    zero = values <= cutoff
    return merge_repeated(np.where(zero, 0.0, values), cutoff), zero


def zero_columns(vecs: FloatArray, zero: BoolArray) -> FloatArray:
    """``vecs`` (..., m, p) with the columns marked by ``zero`` (..., p) set to 0, in place."""
    if zero.any():  # usually none: no pass over the vectors
        vecs[np.broadcast_to(zero[..., None, :], vecs.shape)] = 0.0
    return vecs


def finish_gram(s2: FloatArray, vecs: FloatArray, n: int, d: int) -> tuple[FloatArray, FloatArray]:
    """The rank rule on a Gram route's eigenpairs, in place.

    ``s2`` (..., m) descending, ``vecs`` (..., m, m); returns the first
    p = min(n, d) of them: (s2 (..., p), vecs (..., m, p)).
    """
    p = min(n, d)
    s2, vecs = s2[..., :p], vecs[..., :p]
    np.maximum(s2, 0.0, out=s2)
    s2, zero = rank_rule(s2, n, d)
    return s2, zero_columns(vecs, zero)
