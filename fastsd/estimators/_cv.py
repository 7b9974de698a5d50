r"""SelfDistilledRidgeCV: lambda, k and xi chosen from one decomposition."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state

from .._validation import as_float_array, check_steps
from ..core import IllConditionedXiWarning
from ._base import (
    _LinearPredictMixin,
    _Prepared,
    _check_bool,
    _filter_coef,
    _set_linear_attributes,
)
from ._gcv import gcv_table
from ._holdout import holdout_table
from ._loo import loo_table
from ._tuning import select

__all__ = ["SelfDistilledRidgeCV", "DEFAULT_LAMS", "TUNING_RULES"]

#: Default lambda grid: ``np.logspace(-3, 3, 13)`` (as a tuple, so that it is a
#: valid scikit-learn default parameter value).
DEFAULT_LAMS = tuple(np.logspace(-3, 3, 13).tolist())

TUNING_RULES = ("gcv", "loo", "holdout")

#: Warn when an entry whose optimal xi is not recoverable beats the chosen one
#: by more than this relative margin.
WARN_RTOL = 1e-3


def _check_lams(lams, name="lams"):
    if isinstance(lams, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of penalties >= 0, got {lams!r}")
    arr = np.atleast_1d(as_float_array(lams, name, ndim=(0, 1)))
    if np.any(arr < 0):
        raise ValueError(f"{name} must all be >= 0 (ridge penalties), got min {arr.min()!r}")
    return arr


def _check_fraction(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in (0, 1), got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return float(value)


def tuning_rule_table(tuning, prep, dec, lams, max_steps):
    """TuningTable of a one-shot rule ('gcv' or 'loo') on prepared data."""
    args = (dec.U, dec.s2, prep.Y)
    if tuning == "gcv":
        return gcv_table(*args, prep.w_sum, prep.fit_intercept, lams, max_steps)
    return loo_table(*args, prep.sqrt_w, prep.w_sum, prep.fit_intercept, lams, max_steps)


class SelfDistilledRidgeCV(_LinearPredictMixin, RegressorMixin, BaseEstimator):
    r"""Self-distilled ridge with lambda, the number of steps k <= K and xi tuned.

    For every lambda in ``lams`` and every k = 0..``max_steps`` the estimated
    prediction risk is minimized over the k-step imitation parameters xi in
    closed form (each criterion is a quadratic in the filter), all from one
    decomposition of X; the (lambda, k) of least estimated risk is kept (ties,
    up to rounding, go to fewer steps) and the model refit with it.

    Parameters
    ----------
    lams : sequence of float, default=tuple(np.logspace(-3, 3, 13))
        Ridge penalties to try (>= 0, unscaled: ``alpha`` of
        :class:`sklearn.linear_model.Ridge`).
    max_steps : int, default=2
        K: the largest number of self-distillation steps considered
        (0: ridge only, i.e. ``RidgeCV``).
    tuning : {"loo", "gcv", "holdout"}, default="loo"
        (``"loo"`` is the default because it is exact and the most robust;
        see Notes.)
        * ``"gcv"``: one-shot generalized cross-validation (Dang, Patil &
          Rinaldo for k = 1, generalized to k steps): GCV-corrected cross-risk
          matrix R of the smoothers H, H^2, ..., H^{k+1}, minimized over
          combinations summing to one.
        * ``"loo"``: exact leave-one-out error of the whole k-step procedure
          (teacher and every student refit without the point), computed by
          rank-one downdates in the eigenbasis, no refits.
        * ``"holdout"``: the paper's rule: a random ``val_fraction`` of the
          samples is held out, lambda/k/xi minimize the validation MSE of the
          model fit on the rest; the final model is then refit on all samples
          with the chosen lambda and xi (like ``GridSearchCV(refit=True)``).
    fit_intercept : bool, default=True
    val_fraction : float, default=0.2
        Fraction held out by ``tuning="holdout"`` (at least one sample each side).
    random_state : int, RandomState or None, default=None
        Seed of the holdout split.

    Attributes
    ----------
    lam_ : float
    k_ : int
    xi_ : ndarray of shape (k_,)
        ``SelfDistilledRidge(lam=lam_, xi=xi_)`` fit on the same data gives
        the same coefficients.
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    best_score_ : float
        Minus the estimated risk (mean squared error) of the chosen model.
    cv_results_ : dict
        ``"lams"`` (L,), ``"k"`` (K + 1,), ``"risk"`` (L, K + 1): estimated
        risk (GCV estimate, mean squared LOO error or validation MSE, weighted
        by sample_weight, averaged over targets) at the best xi for each
        (lambda, k); ``"xi"`` (L, K + 1, K): those xi (row k in the first k
        entries, NaN after and where the optimal xi cannot be recovered to
        working accuracy); ``"valid"`` (L, K + 1): selectable entries.
    n_features_in_ : int
    feature_names_in_ : ndarray

    Notes
    -----
    Multiple targets share lambda, k and xi (the risks are averaged). Sample
    weights are frequency weights (zero weight = sample absent; for
    ``"gcv"`` integer weights are also equivalent to repeated samples, which
    cannot hold for ``"loo"``, where a repeated sample stays in its own
    training set, nor for the random split of ``"holdout"``).

    Each criterion is minimized over xi for each k, so the estimated risk is
    non-increasing in k (the (k-1)-step schedules are k-step schedules with a
    leading reset step): the selected ``k_`` is usually ``max_steps`` unless
    extra steps bring no improvement. ``max_steps`` is the complexity knob.

    The optimal xi are often very large (the filter is a polynomial in the
    eigenvalues fitted with k free coefficients), and the in-sample
    minimization over xi is optimistic. ``"loo"`` is exact for every fixed xi
    and the most robust of the three; the generalized ``"gcv"`` rule is exact
    algebra on GCV approximations whose small errors large-xi combinations can
    exploit (see :mod:`fastsd.estimators._gcv`), and ``"holdout"`` fits k
    parameters on the validation part only: both can pick poor models for
    k >= 2, or when n_samples < n_features.
    """

    def __init__(self, *, lams=DEFAULT_LAMS, max_steps=2, tuning="loo", fit_intercept=True,
                 val_fraction=0.2, random_state=None):
        self.lams = lams
        self.max_steps = max_steps
        self.tuning = tuning
        self.fit_intercept = fit_intercept
        self.val_fraction = val_fraction
        self.random_state = random_state

    def _check_params(self):
        lams = _check_lams(self.lams)
        K = check_steps(self.max_steps, "max_steps")
        if not isinstance(self.tuning, str) or self.tuning not in TUNING_RULES:
            raise ValueError(f"tuning must be one of {TUNING_RULES}, got {self.tuning!r}")
        fit_intercept = _check_bool(self.fit_intercept, "fit_intercept")
        if self.tuning == "holdout":
            _check_fraction(self.val_fraction, "val_fraction")
        return lams, K, fit_intercept

    def fit(self, X, y, sample_weight=None):
        """Tune lambda, k and xi, then fit on all of (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        lams, K, fit_intercept = self._check_params()
        X, y, sample_weight = self._validate_fit_data(X, y, sample_weight)
        n = X.shape[0]
        if n < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples to estimate a risk, "
                f"got n_samples={n}"
            )
        prep = _Prepared(X, y, sample_weight, fit_intercept)
        dec, Z = prep.decompose()
        if self.tuning == "holdout":
            table = self._holdout(X, y, sample_weight, lams, K, fit_intercept)
        else:
            table = tuning_rule_table(self.tuning, prep, dec, lams, K)
        best = select(table)
        if best is None:
            raise ValueError(
                f"no value in lams gives a defined {self.tuning!r} risk estimate with "
                f"n_samples={n}, n_features={X.shape[1]} (e.g. leverage 1 at lam=0); "
                "use positive lams or more samples"
            )
        raw = np.unravel_index(np.argmin(np.where(np.isnan(table.risk), np.inf, table.risk)),
                               table.risk.shape)
        if not table.valid[raw] and table.risk[raw] * (1.0 + WARN_RTOL) < table.risk[best]:
            warnings.warn(
                f"the best {self.tuning!r} entry (lam={lams[raw[0]]:g}, k={raw[1]}) has an "
                "optimal xi too ill-conditioned to recover; the best recoverable one was used",
                IllConditionedXiWarning,
                stacklevel=2,
            )
        l_best, k_best = best
        self.lam_ = float(lams[l_best])
        self.k_ = int(k_best)
        self.xi_ = table.xi[l_best, k_best, :k_best].copy()
        _set_linear_attributes(self, prep, _filter_coef(dec, Z, self.lam_, self.xi_), X.dtype)
        self.best_score_ = -float(table.risk[l_best, k_best])
        self.cv_results_ = {
            "lams": lams,
            "k": np.arange(K + 1),
            "risk": table.risk,
            "xi": table.xi,
            "valid": table.valid,
        }
        return self

    def _holdout(self, X, y, sample_weight, lams, K, fit_intercept):
        n = X.shape[0]
        rng = check_random_state(self.random_state)
        n_val = min(n - 1, max(1, int(round(self.val_fraction * n))))
        perm = rng.permutation(n)
        val, tr = perm[:n_val], perm[n_val:]
        sw_tr = sw_val = None
        if sample_weight is not None:
            sw_tr, sw_val = sample_weight[tr], sample_weight[val]
            if not sw_tr.sum() > 0 or not sw_val.sum() > 0:
                raise ValueError("sample_weight is zero on the whole training or validation "
                                 "part of the holdout split; change random_state")
        return holdout_table(X[tr], y[tr], X[val], y[val], lams, K, fit_intercept=fit_intercept,
                             sample_weight=sw_tr, sample_weight_val=sw_val)
