r"""Self-distilled kernel ridge regression as scikit-learn regressors.

Kernel ridge with penalty ``lam`` (scikit-learn ``KernelRidge``'s ``alpha``:
the same number gives the same model at k = 0) has dual coefficients
alpha_0 = (K + lam I)^{-1} y; step i refits on the mixed targets,
alpha_i = (K + lam I)^{-1} (xi_i K alpha_{i-1} + (1 - xi_i) y), and predictions
are f(x) = K(x, X_fit) alpha_k. Computed in closed form from one
eigendecomposition of K (:func:`fastsd.decompose_kernel`). No intercept, as in
``KernelRidge``.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.kernel_ridge import KernelRidge
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._validation import check_result_size
from ..decomposition.kernel import check_kernel, decompose_kernel, kernel_matrix
from ..reference.optimal import optimal_validation
from ..reference.spectral import eval_projection, self_distill_spectral
from ._base import (  # type: ignore[attr-defined]  # _sk_validate_data: a private re-export
    _DTYPES,
    LAM,
    _fit_context,
    _lams_values,
    _sk_validate_data,
    _xi_values,
)
from ._cv import DEFAULT_LAMS, tuning_shapes
from ._tuning import select, validation_table

if TYPE_CHECKING:
    from typing import Self

    from ..decomposition import Decomposition

__all__ = ["SelfDistilledKernelRidge", "SelfDistilledKernelRidgeCV"]


class _KernelMixin:
    """Kernel evaluation with scikit-learn KernelRidge's parameter conventions."""

    kernel: str | Callable[..., Any]
    kernel_params: dict[str, Any] | None
    gamma: float | None
    degree: float
    coef0: float
    X_fit_: NDArray[np.floating[Any]]
    dual_coef_: NDArray[np.float64]

    def _kernel_params(self) -> dict[str, Any]:
        if callable(self.kernel):
            return dict(self.kernel_params or {})
        if self.kernel_params is not None:
            return dict(self.kernel_params)
        return {"gamma": self.gamma, "degree": self.degree, "coef0": self.coef0}

    def _gram(self, A: ArrayLike, B: ArrayLike) -> NDArray[np.float64]:
        return kernel_matrix(A, B, self.kernel, self._kernel_params())

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """Predict f(x) = K(x, X_fit) alpha.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            (n_samples, n_samples_fit) for ``kernel="precomputed"``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        check_is_fitted(self, "dual_coef_")
        X = cast(
            "NDArray[np.floating[Any]]", _sk_validate_data(self, X, reset=False, dtype=_DTYPES)
        )
        return self._gram(X, self.X_fit_) @ self.dual_coef_

    def _fit_data(
        self,
        X: ArrayLike,
        y: ArrayLike,
        multi_output: bool,
    ) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]:
        X, y = cast(
            "tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]",
            _sk_validate_data(self, X, y, dtype=_DTYPES, multi_output=multi_output, y_numeric=True),
        )
        if self.kernel == "precomputed" and X.shape[0] != X.shape[1]:
            raise ValueError(
                f"X must be a square kernel matrix for kernel='precomputed', got shape {X.shape}"
            )
        if self.kernel_params is not None:  # unknown keys are errors, as in decompose(kernel=)
            check_kernel(self.kernel, self.kernel_params)
        return X, y

    def __sklearn_tags__(self) -> Any:
        # provided by BaseEstimator in the MRO
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.pairwise = self.kernel == "precomputed"
        return tags

    def _more_tags(self) -> dict[str, bool]:  # scikit-learn < 1.6
        return {"pairwise": self.kernel == "precomputed"}


def _dual(
    dec: Decomposition,
    Y: NDArray[np.float64],
    lam: float,
    xi: ArrayLike,
) -> NDArray[np.float64]:
    """alpha_k for every target column of Y (n, T): shape (n, T)."""
    Z = np.sqrt(dec.s2)[:, None] * (dec.U.T @ Y)
    alpha = self_distill_spectral(dec.V, dec.s2, Z.T, np.array([lam]), np.asarray(xi, float))
    return alpha[:, 0, :].T


#: KernelRidge's constraints on the kernel parameters (its ``alpha`` is our ``lam``).
_KERNEL_CONSTRAINTS = {k: v for k, v in KernelRidge._parameter_constraints.items() if k != "alpha"}


# scikit-learn ships no type stubs, so its base classes are Any to mypy.
class SelfDistilledKernelRidge(_KernelMixin, RegressorMixin, BaseEstimator):  # type: ignore[misc]
    r"""k-step self-distilled kernel ridge regression.

    Parameters
    ----------
    lam : float, default=1.0
        Ridge penalty >= 0, scikit-learn ``KernelRidge``'s ``alpha``: with
        ``xi=()`` this is exactly ``KernelRidge(alpha=lam, ...)``.
    xi : sequence of float, default=()
        Imitation parameter of each step, step 1 first.
    kernel : str or callable, default="rbf"
        A ``sklearn.metrics.pairwise`` kernel name, "precomputed", or a callable.
    gamma, degree, coef0, kernel_params
        As in ``sklearn.kernel_ridge.KernelRidge``.

    Attributes
    ----------
    dual_coef_ : ndarray of shape (n_samples,) or (n_samples, n_targets)
    X_fit_ : ndarray of shape (n_samples, n_features)
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from fastsd.estimators import SelfDistilledKernelRidge
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 2)); y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=40)
    >>> SelfDistilledKernelRidge(lam=0.1, xi=[0.5], gamma=0.5).fit(X, y).predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "lam": [LAM],
        "xi": ["array-like"],
        **_KERNEL_CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        lam: float = 1.0,
        xi: ArrayLike = (),
        kernel: str | Callable[..., Any] = "rbf",
        gamma: float | None = None,
        degree: float = 3,
        coef0: float = 1,
        kernel_params: dict[str, Any] | None = None,
    ) -> None:
        self.lam = lam
        self.xi = xi
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.kernel_params = kernel_params

    @_fit_context
    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Fit the k-step self-distilled kernel ridge model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            (n_samples, n_samples) Gram matrix for ``kernel="precomputed"``.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self
        """
        xi = _xi_values(self.xi)
        X, y = self._fit_data(X, y, multi_output=True)
        Y = np.asarray(y, dtype=np.float64)
        Y2 = Y[:, None] if Y.ndim == 1 else Y
        dec = decompose_kernel(self._gram(X, X), name="the kernel matrix of X")
        alpha = _dual(dec, Y2, float(self.lam), xi)
        self.dual_coef_ = alpha[:, 0] if Y.ndim == 1 else alpha
        self.X_fit_ = X
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class SelfDistilledKernelRidgeCV(_KernelMixin, RegressorMixin, BaseEstimator):  # type: ignore[misc]
    r"""Self-distilled kernel ridge with lam, k <= max_steps and xi tuned on a holdout set.

    A random ``val_fraction`` of the samples is held out; for every lam the
    validation-MSE-optimal xi of each k is found in closed form (the
    validation MSE is a quadratic in the products of xi, predictions going
    through the cross-kernel K(X_val, X_train)); the best (lam, k, xi) is then
    refitted on all samples (the paper's holdout rule).

    Parameters
    ----------
    lams : sequence of float, default=DEFAULT_LAMS
    max_steps : int, default=2
    kernel, gamma, degree, coef0, kernel_params
        As in :class:`SelfDistilledKernelRidge`.
    val_fraction : float, default=0.2
    random_state : int, RandomState or None, default=None

    Attributes
    ----------
    lam_, k_, xi_ : the chosen penalty, number of steps and schedule
    dual_coef_ : ndarray of shape (n_samples,)
    X_fit_ : ndarray of shape (n_samples, n_features)
    best_score_ : float
        Minus the validation MSE of the choice.
    cv_results_ : dict
        ``lams``, ``k``, ``risk`` (L, K + 1) validation MSE, ``xi`` (L, K + 1, K), ``valid``.
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "lams": ["array-like", LAM],
        "max_steps": [Interval(Integral, 0, None, closed="left")],
        **_KERNEL_CONSTRAINTS,
        "val_fraction": [Interval(Real, 0.0, 1.0, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        lams: ArrayLike = DEFAULT_LAMS,
        max_steps: int = 2,
        kernel: str | Callable[..., Any] = "rbf",
        gamma: float | None = None,
        degree: float = 3,
        coef0: float = 1,
        kernel_params: dict[str, Any] | None = None,
        val_fraction: float = 0.2,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.lams = lams
        self.max_steps = max_steps
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.kernel_params = kernel_params
        self.val_fraction = val_fraction
        self.random_state = random_state

    @_fit_context
    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Tune lam, k and xi on a holdout split, then fit on all of (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        lams = _lams_values(self.lams)
        steps = int(self.max_steps)  # K, the largest step count
        X, y = self._fit_data(X, y, multi_output=False)
        y = np.asarray(y, dtype=np.float64)
        n = X.shape[0]
        if n < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples to hold one out, got n_samples={n}"
            )
        check_result_size(
            f"{type(self).__name__}(max_steps={steps}) with {lams.size} lams",
            tuning_shapes(lams.size, steps, n, n, 1),
        )
        rng = check_random_state(self.random_state)
        n_val = min(n - 1, max(1, int(round(self.val_fraction * n))))
        perm = rng.permutation(n)
        val, tr = perm[:n_val], perm[n_val:]
        gram = self._gram(X, X)  # X itself for kernel="precomputed"
        gram_tr, gram_val = gram[np.ix_(tr, tr)], gram[np.ix_(val, tr)]
        dec = decompose_kernel(gram_tr, y[tr], name="the kernel matrix of X")
        R, c, resid2 = eval_projection(dec.eval_basis(gram_val), y[val])
        assert dec.z is not None  # y[tr] was passed
        mse, xi_rows = optimal_validation(dec.s2, dec.z, R, c, resid2, n_val, lams, steps)
        table = validation_table(lams, mse, xi_rows)
        best = select(table)
        if best is None:
            raise ValueError(
                "no value in lams gives a finite validation error; "
                "use positive lams or more samples"
            )
        l_best, k_best = best
        self.lam_ = float(lams[l_best])
        self.k_ = int(k_best)
        self.xi_ = table.xi[l_best, k_best, :k_best].copy()
        full = decompose_kernel(gram, name="the kernel matrix of X")
        self.dual_coef_ = _dual(full, y[:, None], self.lam_, self.xi_)[:, 0]
        self.X_fit_ = X
        self.best_score_ = -float(mse[l_best, k_best])
        self.cv_results_ = {
            "lams": lams,
            "k": np.arange(steps + 1),
            "risk": mse,
            "xi": table.xi,
            "valid": table.valid,
        }
        return self
