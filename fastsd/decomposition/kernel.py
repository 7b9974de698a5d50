r"""Kernel-space decompositions: kernel ridge regression as a spectral filter.

With the Gram matrix K = U diag(s^2) U^T (n x n), kernel ridge with penalty
lam (scikit-learn KernelRidge's ``alpha``) has dual coefficients
alpha_0 = (K + lam I)^{-1} y and k-step self-distillation

    alpha_k = U (c_k * U^T y),    c_k = a_k (1 - u_k)    (see :mod:`fastsd.math.filters`),

fitted values f_k = K alpha_k and predictions f_k(x) = K(x, X) alpha_k. This is
linear ridge on the features Phi = U diag(s) (Phi Phi^T = K) written in dual
coordinates, so a kernel decomposition is a :class:`~fastsd.Decomposition`
with ``V = U diag(1/s)`` (0 where s = 0) and every function of fastsd serves
it unchanged:

* ``self_distill`` returns V (c * z) = U (c * U^T y) = alpha (shape (n,));
* the "theta*" of ``excess_risk`` / ``optimal_xi`` are the target values f* at
  the training points: t = V^T f* = (U^T f*)/s, so that s^2/n t^2 = g^2/n with
  g = U^T f*, and the risk is the in-sample ||f_k - f*||^2/n; the part of f*
  outside range(K) adds ||f* - U g||^2 / n (:func:`unseen_target_risk`);
* evaluation sets enter through the cross-kernel, W = K(X_eval, X) V
  (:meth:`KernelDecomposition.eval_basis`).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from .._typing import FloatArray
from .._validation import as_float_array, check_result_size
from .base import Decomposition, rank_cutoff, rank_rule
from .lapack import blas_threads

__all__ = [
    "KernelDecomposition",
    "check_kernel",
    "decompose_kernel",
    "kernel_matrix",
    "unseen_target_risk",
]


def kernel_matrix(
    A: ArrayLike,
    B: ArrayLike,
    kernel: str | Callable[..., float] = "rbf",
    kernel_params: dict[str, Any] | None = None,
) -> FloatArray:
    """K(A, B) with a scikit-learn pairwise kernel name or a callable.

    Parameters
    ----------
    A : ndarray of shape (m, d)
    B : ndarray of shape (n, d)
    kernel : str or callable
        A name of ``sklearn.metrics.pairwise.PAIRWISE_KERNEL_FUNCTIONS``
        ("rbf", "laplacian", "polynomial", "linear", ...), or a callable
        ``kernel(a, b, **kernel_params)`` on single samples (as in
        scikit-learn), or "precomputed" (then A is already K(A, B)).
    kernel_params : dict, optional
        Passed on (gamma, degree, coef0, ...).

    Returns
    -------
    ndarray of shape (m, n)
    """
    try:
        from sklearn.metrics.pairwise import pairwise_kernels
    except ImportError as exc:  # pragma: no cover - exercised without scikit-learn
        raise ImportError(
            "kernel= needs scikit-learn; install it with `pip install fastsd[sklearn]`"
        ) from exc
    params = dict(kernel_params or {})
    if kernel == "precomputed":
        return np.asarray(A, dtype=np.float64)
    return np.asarray(
        pairwise_kernels(A, B, metric=kernel, filter_params=True, **params), dtype=np.float64
    )


class KernelDecomposition(Decomposition):
    """Eigendecomposition of a kernel (Gram) matrix, K = U diag(s2) U^T.

    ``V = U diag(1/s)`` maps filter coefficients to dual coefficients alpha
    (see the module notes). When built by ``decompose(X, kernel=...)`` it
    keeps the training inputs and the kernel, so that evaluation sets can be
    raw inputs; from a precomputed Gram matrix they must be cross-kernel
    matrices K(X_eval, X_train) of shape (n_eval, n).
    """

    # set once in __init__ through object.__setattr__ (the instance is read-only)
    X_fit: FloatArray | None
    kernel: str | Callable[..., float] | None
    kernel_params: dict[str, Any] | None

    def __init__(
        self,
        s2: FloatArray,
        V: FloatArray,
        U: FloatArray,
        z: FloatArray | None = None,
        y_norm2: float | FloatArray | None = None,
        method: str = "kernel",
        *,
        X_fit: FloatArray | None = None,
        kernel: str | Callable[..., float] | None = None,
        kernel_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(s2, V, U, z, y_norm2, method)
        for key, value in dict(X_fit=X_fit, kernel=kernel, kernel_params=kernel_params).items():
            object.__setattr__(self, key, value)

    @property
    def eval_width(self) -> int:
        """Columns of an evaluation input: the raw features, or n for cross-kernels."""
        return self.n_features if self.X_fit is None else self.X_fit.shape[-1]

    def cross_kernel(self, X_eval: FloatArray) -> FloatArray:
        """K(X_eval, X_train), shape ([B,] n_eval, n) (X_eval itself when precomputed)."""
        if self.X_fit is None:
            return X_eval
        kernel = cast("str | Callable[..., float]", self.kernel)  # set whenever X_fit is
        if X_eval.ndim == 2 and self.X_fit.ndim == 2:
            return kernel_matrix(X_eval, self.X_fit, kernel, self.kernel_params)
        return np.stack(
            [kernel_matrix(a, b, kernel, self.kernel_params) for a, b in zip(X_eval, self.X_fit)]
        )

    def eval_basis(self, X_eval: FloatArray) -> FloatArray:
        """W = K(X_eval, X) V: predictions of the filter coefficients are W (c * z)."""
        return self.cross_kernel(X_eval) @ self.V

    def subset(self, index: Any) -> KernelDecomposition:
        """The decomposition of the problems ``index`` of a batch."""
        base = Decomposition.subset(self, index)
        return KernelDecomposition(
            s2=base.s2,
            V=base.V,
            U=base.U,
            z=base.z,
            y_norm2=base.y_norm2,
            method=base.method,
            X_fit=None if self.X_fit is None else self.X_fit[index],
            kernel=self.kernel,
            kernel_params=self.kernel_params,
        )


def _check_gram(K: ArrayLike, name: str) -> FloatArray:
    K = as_float_array(K, name, ndim=(2, 3))
    n = K.shape[-1]
    if K.shape[-2] != n or n == 0:
        raise ValueError(f"{name} must be square, (n, n) or (B, n, n), got shape {K.shape}")
    scale = np.max(np.abs(K), axis=(-2, -1), keepdims=True)
    if np.any(np.abs(K - np.swapaxes(K, -1, -2)) > 1e3 * np.finfo(float).eps * scale):
        raise ValueError(f"{name} must be symmetric (a Gram matrix); pass (K + K.T) / 2")
    return 0.5 * (K + np.swapaxes(K, -1, -2))


def decompose_kernel(
    K: ArrayLike,
    y: ArrayLike | None = None,
    *,
    X_fit: FloatArray | None = None,
    kernel: str | Callable[..., float] | None = None,
    kernel_params: dict[str, Any] | None = None,
    name: str = "K",
) -> KernelDecomposition:
    """Spectral decomposition of a kernel matrix for kernel-ridge self-distillation.

    Parameters
    ----------
    K : array_like of shape (n, n) or (B, n, n)
        Symmetric positive semidefinite Gram matrix (or a batch of B).
    y : array_like of shape (n,) or (B, n), optional
        Targets, projected once (as in :func:`fastsd.decompose`).

    Returns
    -------
    KernelDecomposition
        ``s2`` (p = n eigenvalues of K, descending; numerically zero ones,
        s2 <= n eps max(s2), and negative rounding are set to exactly 0),
        ``U`` (n, n) eigenvectors, ``V = U diag(1/s)``; batched with a leading B.

    Raises
    ------
    ValueError
        If K is not square, not symmetric, or has a negative eigenvalue
        beyond rounding (not positive semidefinite).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(30, 2)), rng.normal(size=30)
    >>> K = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1))
    >>> dec = fastsd.decompose_kernel(K, y)
    >>> fastsd.self_distill(dec, None, 0.1, [0.5]).shape  # dual coefficients alpha
    (30,)
    """
    K = _check_gram(K, name)
    n = K.shape[-1]
    with blas_threads(1):  # a threaded eigh sums in an order set by the thread count
        s2, U = np.linalg.eigh(K)
    s2, U = s2[..., ::-1], U[..., ::-1]
    cutoff = rank_cutoff(np.abs(s2), n, n)
    if np.any(s2 < -cutoff[..., :1] * 1e3):
        raise ValueError(
            f"{name} must be positive semidefinite (a kernel matrix), got an "
            f"eigenvalue {float(np.min(s2))!r}"
        )
    s2, zero = rank_rule(s2, n, n, cutoff)
    U = np.where(zero[..., None, :], 0.0, U)
    with np.errstate(divide="ignore"):
        inv_s = np.where(zero, 0.0, 1.0 / np.sqrt(np.where(zero, 1.0, s2)))
    dec = KernelDecomposition(
        s2=np.ascontiguousarray(s2),
        V=np.ascontiguousarray(U * inv_s[..., None, :]),
        U=np.ascontiguousarray(U),
        method="kernel",
        X_fit=X_fit,
        kernel=kernel,
        kernel_params=kernel_params,
    )
    return dec if y is None else dec.with_targets(y)


def check_kernel(
    kernel: object, kernel_params: object
) -> tuple[str | Callable[..., float], dict[str, Any]]:
    """A kernel and its parameters, checked: ``(kernel, params)``.

    ``kernel`` is a name of scikit-learn's pairwise kernels, "precomputed" or a
    callable ``kernel(a, b, **params)``; ``kernel_params`` None or a dict of
    parameters that kernel takes (an unknown key is an error naming it, with
    the closest valid one).
    """
    if kernel_params is None:
        params: dict[str, Any] = {}
    elif isinstance(kernel_params, Mapping):
        params = dict(kernel_params)
    else:
        raise TypeError(
            f"kernel_params must be a dict such as {{'gamma': 0.5}}, got "
            f"{type(kernel_params).__name__} {kernel_params!r}"
        )
    if callable(kernel):
        try:
            signature = inspect.signature(kernel)
        except (TypeError, ValueError):  # a builtin without a signature: nothing to check
            return kernel, params
        kinds = {p.kind for p in signature.parameters.values()}
        if inspect.Parameter.VAR_KEYWORD in kinds:
            return kernel, params
        names = list(signature.parameters)[2:]  # after the two samples
        _check_params(params, names, f"the kernel {getattr(kernel, '__name__', kernel)!r}")
        return kernel, params
    if not isinstance(kernel, str):
        raise TypeError(f"kernel must be a string or a callable, got {type(kernel).__name__}")
    try:
        from sklearn.metrics.pairwise import KERNEL_PARAMS
    except ImportError as exc:  # pragma: no cover - exercised without scikit-learn
        raise ImportError(
            "kernel= needs scikit-learn; install it with `pip install fastsd[sklearn]`"
        ) from exc
    known = {**{name: sorted(keys) for name, keys in KERNEL_PARAMS.items()}, "precomputed": []}
    if kernel not in known:
        close = difflib.get_close_matches(kernel, list(known), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"kernel must be one of {sorted(known)} or a callable, got {kernel!r}{hint}"
        )
    _check_params(params, known[kernel], f"kernel {kernel!r}")
    return kernel, params


def _check_params(params: Mapping[str, Any], names: Sequence[str], what: str) -> None:
    for key in params:
        if key not in names:
            close = difflib.get_close_matches(str(key), list(names), n=1, cutoff=0.5)
            if close:
                hint = f"did you mean {close[0]!r}?"
            else:
                hint = f"it takes {', '.join(map(repr, names))}" if names else "it takes none"
            raise ValueError(f"kernel_params: unknown parameter {key!r} for {what}; {hint}")


def decompose_features(
    X: ArrayLike,
    y: ArrayLike | None,
    kernel: str | Callable[..., float],
    kernel_params: dict[str, Any] | None = None,
) -> KernelDecomposition:
    """:func:`decompose_kernel` of K(X, X) for X (n, d) or (B, n, d); keeps X and the kernel."""
    kernel, kernel_params = check_kernel(kernel, kernel_params)
    X = as_float_array(X, "X", ndim=(2, 3))
    if X.shape[-2] == 0 or X.shape[-1] == 0:
        raise ValueError(f"X must have at least one sample and one feature, got shape {X.shape}")
    n = X.shape[-2]
    check_result_size(
        "decompose",
        [X.shape[:-1] + (n,)] * 3,
        what="the kernel matrix K(X, X) and its eigenvectors U and V",
        fix=f"the kernel route holds n x n matrices (n = {n} samples): use fewer samples",
    )
    if X.ndim == 2:
        K = kernel_matrix(X, X, kernel, kernel_params)
    else:
        K = np.stack([kernel_matrix(x, x, kernel, kernel_params) for x in X])
    return decompose_kernel(K, y, X_fit=X, kernel=kernel, kernel_params=kernel_params)


def unseen_target_risk(dec: Decomposition, f: FloatArray) -> FloatArray:
    """||f* - U U^T f*||^2 / n: the part of the target outside range(K), shape () or (B,).

    ``f`` is f* at the training points, a checked float64 array ([B,] n). It is
    the same for every filter, so it is added to the risks of ``excess_risk`` /
    ``optimal_xi`` / ``oracle_risk`` for kernel decompositions.
    """
    g = np.einsum("...np,...n->...p", dec.U, f)
    rest = f - np.einsum("...np,...p->...n", dec.U, g)
    return cast(FloatArray, np.sum(rest * rest, axis=-1) / dec.n_samples)
