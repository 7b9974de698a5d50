r"""SelfDistilledRidge: k-step self-distilled ridge as a scikit-learn regressor.

The fit is one decomposition of the (weighted, centered) design and one
spectral filter, exactly as :func:`fastsd.self_distill`:

    theta_k = V diag((1 - u_k) / (s^2 + lam)) V^T X^T y,   u_k = sum_m xibar_m q^m.

Intercept: the design and targets are centered by their (weighted) means, so
every step of the procedure (teacher and students) fits its own unpenalized
intercept; the k-step intercept is ``y_mean - x_mean @ coef``. Sample weights
w_i multiply the squared losses of every step, sum_i w_i (t_i - x_i theta - b)^2
+ lam ||theta||^2; they are applied by rescaling the centered rows by sqrt(w_i)
(integer weights are equivalent to repeating samples, zero weights to removing
them).
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.base import _fit_context as _sk_fit_context
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .._validation import as_float_array
from ..decomposition import decompose
from ..reference.spectral import self_distill_spectral

if TYPE_CHECKING:
    from typing import Self

    from ..decomposition import Decomposition

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - scikit-learn < 1.6

    def _sk_validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


__all__ = ["SelfDistilledRidge"]

_DTYPES: list[type[np.floating[Any]]] = [np.float64, np.float32]


# ----------------------------------------------------------------------------
# parameter constraints (scikit-learn's validation, at fit time, naming the parameter)
# ----------------------------------------------------------------------------

#: A ridge penalty: finite and >= 0 (infinity would make the filters 0/0).
LAM = Interval(Real, 0.0, np.inf, closed="left")

_FitMethod = TypeVar("_FitMethod", bound=Callable[..., Any])


def _fit_context(fit: _FitMethod) -> _FitMethod:
    """scikit-learn's ``_fit_context``: validate ``_parameter_constraints`` once per fit."""
    return cast("_FitMethod", _sk_fit_context(prefer_skip_nested_validation=True)(fit))


def _validated(constraints: dict[str, list[Any]]) -> Callable[[_FitMethod], _FitMethod]:
    """scikit-learn's ``validate_params`` for a public function of the estimators."""
    return cast(
        "Callable[[_FitMethod], _FitMethod]",
        validate_params(constraints, prefer_skip_nested_validation=True),
    )


def _lams_values(lams: ArrayLike, name: str = "lams") -> NDArray[np.float64]:
    """The penalties as a fresh 1-D float64 array, finite and >= 0 (a scalar is one
    penalty; the constraint ``["array-like", LAM]`` has been checked)."""
    arr = np.atleast_1d(as_float_array(lams, name, ndim=(0, 1)))
    if np.any(arr < 0):
        raise ValueError(f"{name} must all be >= 0 (ridge penalties), got min {arr.min()!r}")
    return arr


def _xi_values(xi: ArrayLike, name: str = "xi") -> NDArray[np.float64]:
    """The schedule as a fresh 1-D float64 array of finite values (its constraint,
    ``"array-like"``, has been checked)."""
    return as_float_array(xi, name, ndim=1, allow_empty=True)


# ----------------------------------------------------------------------------
# data preparation shared by the estimators
# ----------------------------------------------------------------------------


class _Prepared:
    """Centered, sqrt(weight)-scaled training data.

    Attributes
    ----------
    X : (n, d) float64, rows sqrt(w_i) (x_i - x_mean)
    Y : (n, T) float64, rows sqrt(w_i) (y_i - y_mean)
    x_mean : (d,), y_mean : (T,)
    sqrt_w : (n,) or None (unit weights)
    w_sum : float, sum of the weights (n for unit weights)
    one_d : bool, y was 1-D
    """

    __slots__ = ("X", "Y", "x_mean", "y_mean", "sqrt_w", "w_sum", "one_d", "fit_intercept")

    X: NDArray[np.float64]
    Y: NDArray[np.float64]
    x_mean: NDArray[np.float64]
    y_mean: NDArray[np.float64]
    sqrt_w: NDArray[np.float64] | None
    w_sum: float
    one_d: bool
    fit_intercept: bool

    def __init__(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None, fit_intercept: bool
    ) -> None:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self.one_d = y.ndim == 1
        Y = y[:, None] if self.one_d else y
        n, d = X.shape
        self.fit_intercept = fit_intercept
        if sample_weight is None:
            w = None
            self.w_sum = float(n)
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
            if np.any(w < 0):
                raise ValueError("sample_weight must be non-negative")
            self.w_sum = float(w.sum())
            if not self.w_sum > 0:
                raise ValueError("sample_weight must not be all zero")
        if fit_intercept:
            self.x_mean = np.average(X, axis=0, weights=w)
            self.y_mean = np.average(Y, axis=0, weights=w)
            X = X - self.x_mean
            Y = Y - self.y_mean
        else:
            self.x_mean = np.zeros(d)
            self.y_mean = np.zeros(Y.shape[1])
        if w is not None:
            self.sqrt_w = np.sqrt(w)
            X = X * self.sqrt_w[:, None]
            Y = Y * self.sqrt_w[:, None]
        else:
            self.sqrt_w = None
        self.X, self.Y = X, Y

    def decompose(self) -> tuple[Decomposition, NDArray[np.float64]]:
        """Decomposition of the prepared design and Z = V^T X^T Y, shape (p, T)."""
        dec = decompose(self.X)
        Z = np.sqrt(dec.s2)[:, None] * (dec.U.T @ self.Y)
        return dec, Z


def _filter_coef(
    dec: Decomposition, Z: NDArray[np.float64], lam: float, xi: ArrayLike
) -> NDArray[np.float64]:
    """theta_k for every target: (T, d)."""
    theta = self_distill_spectral(dec.V, dec.s2, Z.T, np.array([lam]), np.asarray(xi, float))
    return theta[:, 0, :]


def _set_linear_attributes(
    est: Any, prep: _Prepared, coef: NDArray[np.float64], dtype: np.dtype[Any]
) -> None:
    """coef_ (d,) or (T, d) and intercept_ in sklearn's convention."""
    intercept = prep.y_mean - coef @ prep.x_mean if prep.fit_intercept else np.zeros(coef.shape[0])
    if prep.one_d:
        est.coef_ = coef[0].astype(dtype, copy=False)
        est.intercept_ = dtype.type(intercept[0]) if prep.fit_intercept else 0.0
    else:
        est.coef_ = coef.astype(dtype, copy=False)
        est.intercept_ = intercept.astype(dtype, copy=False)


class _LinearPredictMixin:
    """predict from coef_ / intercept_ and the shared tags."""

    coef_: NDArray[np.floating[Any]]
    intercept_: Any

    def predict(self, X: ArrayLike) -> NDArray[np.floating[Any]]:
        """Predict with the fitted linear model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        check_is_fitted(self, "coef_")
        X = cast(
            "NDArray[np.floating[Any]]", _sk_validate_data(self, X, reset=False, dtype=_DTYPES)
        )
        # intercept_ is Any (a float or an array)
        return X @ self.coef_.T + self.intercept_  # type: ignore[no-any-return]

    def _validate_fit_data(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None
    ) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]], NDArray[np.float64] | None]:
        X, y = cast(
            "tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]",
            _sk_validate_data(self, X, y, dtype=_DTYPES, multi_output=True, y_numeric=True),
        )
        if sample_weight is not None:
            sample_weight = cast(
                "NDArray[np.float64]", _check_sample_weight(sample_weight, X, dtype=np.float64)
            )
        return X, y, sample_weight

    def __sklearn_tags__(self) -> Any:
        # provided by BaseEstimator in the MRO
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _more_tags(self) -> dict[str, bool]:  # scikit-learn < 1.6
        return {"multioutput": True}


# scikit-learn ships no type stubs, so its base classes are Any to mypy.
class SelfDistilledRidge(
    _LinearPredictMixin,
    RegressorMixin,  # type: ignore[misc]
    BaseEstimator,  # type: ignore[misc]
):
    r"""k-step self-distilled ridge regression (Pareek, Du & Oh, NeurIPS 2024).

    The teacher is ridge, theta_0 = argmin ||y - X theta||^2 + lam ||theta||^2;
    step i refits ridge on the mixed targets xi_i X theta_{i-1} + (1 - xi_i) y.
    ``xi=()`` is plain ridge (same objective as :class:`sklearn.linear_model.Ridge`
    with ``alpha=lam``). Computed in closed form from one decomposition of X.

    Parameters
    ----------
    lam : float, default=1.0
        Ridge penalty lambda >= 0 (not scaled by the sample size; 0 gives the
        minimum-norm least-squares fit).
    xi : sequence of float, default=()
        Imitation parameter of each step, step 1 first; length k = number of
        self-distillation steps. Any real values.
    fit_intercept : bool, default=True
        Fit an unpenalized intercept (by centering X and y) at every step.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Only when X has string feature names.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsd.estimators import SelfDistilledRidge
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 4)); y = X @ np.ones(4) + rng.normal(size=50)
    >>> SelfDistilledRidge(lam=5.0, xi=[0.5, 1.2]).fit(X, y).coef_.shape
    (4,)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "lam": [LAM],
        "xi": ["array-like"],
        "fit_intercept": ["boolean"],
    }

    def __init__(self, *, lam: float = 1.0, xi: ArrayLike = (), fit_intercept: bool = True) -> None:
        self.lam = lam
        self.xi = xi
        self.fit_intercept = fit_intercept

    @_fit_context
    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Fit the k-step self-distilled estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Several targets share one decomposition of X.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the squared losses (all steps).

        Returns
        -------
        self
        """
        xi = _xi_values(self.xi)
        X, y, sample_weight = self._validate_fit_data(X, y, sample_weight)
        prep = _Prepared(X, y, sample_weight, bool(self.fit_intercept))
        dec, Z = prep.decompose()
        _set_linear_attributes(self, prep, _filter_coef(dec, Z, float(self.lam), xi), X.dtype)
        return self
