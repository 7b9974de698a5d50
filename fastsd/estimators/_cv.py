r"""SelfDistilledRidgeCV: lambda, k and xi chosen from one decomposition."""

from __future__ import annotations

import numbers
import warnings
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state

from .._validation import as_float_array, check_steps
from ..exceptions import IllConditionedXiWarning, TuningWarning
from ..math.reparam import xi_to_xibar
from ._base import _check_bool, _filter_coef, _LinearPredictMixin, _Prepared, _set_linear_attributes
from ._gcv import gcv_table
from ._holdout import holdout_table
from ._loo import loo_columns, loo_table
from ._tuning import TuningTable, admissible, select, select_safe

if TYPE_CHECKING:
    from typing import Self

    from ..decomposition import Decomposition

#: ``extra`` of :func:`select_rule`: (nested risk, z) for "safe", the GCV
#: guard's message or None otherwise.
_RuleExtra = Union[tuple[NDArray[np.float64], float], str, None]

__all__ = ["SelfDistilledRidgeCV", "DEFAULT_LAMS", "TUNING_RULES"]

#: Default lambda grid: ``np.logspace(-3, 3, 13)`` (as a tuple, so that it is a
#: valid scikit-learn default parameter value).
DEFAULT_LAMS = tuple(np.logspace(-3, 3, 13).tolist())

TUNING_RULES = ("safe", "loo", "gcv", "holdout")

#: GCV is refused for more steps than this (see the SelfDistilledRidgeCV notes).
GCV_MAX_STEPS = 1
#: GCV guard: the chosen SD entry's exact LOO risk may exceed its GCV estimate
#: by at most this factor times ridge's own LOO/GCV ratio at the same lambda.
GCV_GUARD = 1.5

#: Warn when an entry whose optimal xi is not recoverable beats the chosen one
#: by more than this relative margin.
WARN_RTOL = 1e-3


def _check_lams(lams: object, name: str = "lams") -> NDArray[np.float64]:
    if isinstance(lams, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of penalties >= 0, got {lams!r}")
    arr = np.atleast_1d(as_float_array(lams, name, ndim=(0, 1)))
    if np.any(arr < 0):
        raise ValueError(f"{name} must all be >= 0 (ridge penalties), got min {arr.min()!r}")
    return arr


def _check_fraction(value: object, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in (0, 1), got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return float(value)


def tuning_rule_table(
    tuning: str, prep: _Prepared, dec: Decomposition, lams: NDArray[np.float64], max_steps: int
) -> TuningTable:
    """TuningTable of a one-shot rule ('gcv' or 'loo') on prepared data."""
    args = (dec.U, dec.s2, prep.Y)
    if tuning == "gcv":
        return gcv_table(*args, prep.w_sum, prep.fit_intercept, lams, max_steps)
    return loo_table(*args, prep.sqrt_w, prep.w_sum, prep.fit_intercept, lams, max_steps)


def select_rule(
    tuning: str, prep: _Prepared, dec: Decomposition, lams: NDArray[np.float64], max_steps: int
) -> tuple[TuningTable, tuple[int, int] | None, _RuleExtra]:
    """(table, best, extra) of a one-shot rule on prepared data.

    ``"safe"``: :func:`~fastsd.estimators._tuning.select_safe` on the LOO
    table and its nested risks (``extra`` = (nested risk, z statistic));
    ``"loo"``: least LOO risk; ``"gcv"``: least GCV risk, then the guard
    :func:`gcv_guard` (``extra`` = the guard's message or None).
    """
    if tuning == "safe":
        table, (nested, losses) = loo_table(
            dec.U,
            dec.s2,
            prep.Y,
            prep.sqrt_w,
            prep.w_sum,
            prep.fit_intercept,
            lams,
            max_steps,
            nested=True,
        )
        points = np.ones(prep.Y.shape[0], bool) if prep.sqrt_w is None else prep.sqrt_w > 0
        table.valid &= admissible(dec.s2, table.lams, table.xi)
        best, z = select_safe(table, nested, losses, points)
        return table, best, (nested, z)
    table = tuning_rule_table(tuning, prep, dec, lams, max_steps)
    best = select(table)
    if tuning == "gcv" and best is not None and best[1] > 0:
        message = gcv_guard(table, best, prep, dec)
        if message is not None:
            return table, select(table, 0), message
    return table, best, None


def gcv_guard(
    table: TuningTable, best: tuple[int, int], prep: _Prepared, dec: Decomposition
) -> str | None:
    """None if the GCV-chosen SD entry is trustworthy, else the reason (str).

    GCV approximates leave-one-out by one trace correction per smoother; a
    schedule whose (large) xi exploit that approximation has a GCV risk far
    below its exact LOO risk. The exact LOO risk of the chosen (lambda, xi) and
    of ridge at the same lambda cost one :func:`loo_columns` call; the entry is
    rejected when LOO / GCV for it exceeds ``GCV_GUARD`` times ridge's own
    LOO / GCV ratio, or is not finite.
    """
    l, k = best
    lam = table.lams[l : l + 1]
    e0, P, defined = loo_columns(
        dec.U, dec.s2, prep.Y, prep.sqrt_w, prep.w_sum, prep.fit_intercept, lam, k
    )
    xibar = xi_to_xibar(table.xi[l, k, :k])
    e = e0[0] + np.tensordot(xibar, P[0], axes=(0, 0))
    loo_sd = float(np.sum(e * e)) / (prep.w_sum * prep.Y.shape[1])
    loo_0 = float(np.sum(e0[0] * e0[0])) / (prep.w_sum * prep.Y.shape[1])
    ratio_sd = loo_sd / table.risk[l, k]
    ratio_0 = loo_0 / table.risk[l, 0]
    if defined[0] and np.isfinite(ratio_sd) and ratio_sd <= GCV_GUARD * max(ratio_0, 1.0):
        return None
    return (
        f"GCV's risk estimate for {k}-step SD at lam={float(lam[0]):g} "
        f"(xi={np.array2string(table.xi[l, k, :k], precision=3)}) is "
        f"{table.risk[l, k]:.4g}, but its exact leave-one-out risk is {loo_sd:.4g} "
        f"(ridge at the same lam: GCV {table.risk[l, 0]:.4g}, LOO {loo_0:.4g}): the "
        "schedule exploits GCV's approximation; falling back to GCV-tuned ridge"
    )


# scikit-learn ships no type stubs, so its base classes are Any to mypy.
class SelfDistilledRidgeCV(
    _LinearPredictMixin,
    RegressorMixin,  # type: ignore[misc]
    BaseEstimator,  # type: ignore[misc]
):
    r"""Self-distilled ridge with lambda, the number of steps k <= K and xi tuned.

    For every lambda in ``lams`` and every k = 0..``max_steps`` the estimated
    prediction risk is minimized over the k-step imitation parameters xi in
    closed form (each criterion is a quadratic in the filter), all from one
    decomposition of X; a (lambda, k) is then chosen by the rule below and the
    model refit with it.

    Parameters
    ----------
    lams : sequence of float, default=tuple(np.logspace(-3, 3, 13))
        Ridge penalties to try (>= 0, unscaled: ``alpha`` of
        :class:`sklearn.linear_model.Ridge`).
    max_steps : int, default=2
        K: the largest number of self-distillation steps considered
        (0: ridge only, i.e. ``RidgeCV``).
    tuning : {"safe", "loo", "gcv", "holdout"}, default="safe"
        * ``"safe"`` (default): built not to lose to ``RidgeCV``. Ridge
          keeps its exact-LOO lambda (``RidgeCV``'s choice). Every
          (lambda, k >= 1) gets its LOO-optimal xi and is scored by an
          *honest* risk, the leave-one-out of the xi fit itself (nested LOO,
          closed form: :func:`fastsd.estimators._loo.nested_loo`); schedules
          whose per-direction shrinkage phi_j r_j leaves [0, 1] are excluded
          (inadmissible: beaten direction by direction by clipping, for every
          theta*; :func:`fastsd.estimators._tuning.admissible`). SD replaces
          ridge only if its nested risk is lower by more than half a standard
          error of the paired per-sample difference. Cost: the LOO rule plus
          one thin QR of n x K per lambda.
        * ``"loo"``: least exact leave-one-out error of the whole k-step
          procedure (teacher and every student refit without the point),
          computed by rank-one downdates in the eigenbasis, no refits. The
          minimum over xi is optimistic: this rule often loses to ridge.
        * ``"gcv"``: one-shot generalized cross-validation (Dang, Patil &
          Rinaldo), ``max_steps <= 1`` only; a guard compares the chosen
          entry's GCV estimate with its exact LOO risk and falls back to
          ridge with a :class:`TuningWarning` when GCV was exploited.
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
    xi_ : ndarray of shape (``k_``,)
        ``SelfDistilledRidge(lam=lam_, xi=xi_)`` fit on the same data gives
        the same coefficients.
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    best_score_ : float
        Minus the estimated risk (mean squared error) of the chosen model
        (for ``"safe"``: its nested LOO risk).
    z_score_ : float
        ``"safe"`` only, a diagnostic: mean / standard error of the
        per-sample difference (best admissible SD entry's nested LOO loss
        minus ridge's LOO loss); negative favours SD. NaN when there was no
        SD candidate, and for the other rules.
    cv_results_ : dict
        ``"lams"`` (L,), ``"k"`` (K + 1,), ``"risk"`` (L, K + 1): estimated
        risk (GCV estimate, mean squared LOO error or validation MSE, weighted
        by sample_weight, averaged over targets) at the best xi for each
        (lambda, k); ``"xi"`` (L, K + 1, K): those xi (row k in the first k
        entries, NaN after and where the optimal xi cannot be recovered to
        working accuracy); ``"valid"`` (L, K + 1): selectable entries (for
        ``"safe"`` also admissible);
        ``"nested_risk"`` (L, K + 1), ``"safe"`` only: the honest risks.
    n_features_in_ : int
    feature_names_in_ : ndarray

    Notes
    -----
    Multiple targets share lambda, k and xi (the risks are averaged). Sample
    weights are frequency weights (zero weight = sample absent; for
    ``"gcv"`` integer weights are also equivalent to repeated samples, which
    cannot hold for ``"loo"``/``"safe"``, where a repeated sample stays in its
    own training set, nor for the random split of ``"holdout"``).

    Each criterion is minimized over xi for each k, so the estimated risk is
    non-increasing in k: ``"loo"`` and ``"gcv"`` usually pick ``max_steps``,
    and the minimum is optimistic by about 2 k sigma^2 / n plus what huge
    optimal xi add. On the 8 sets of :mod:`fastsd.experiments.tuning` (20
    paired splits at 1%, 10%, 60% training shares) ``"loo"`` lost up to
    +2949% test MSE against RidgeCV on average (Diabetes, n = 4), GCV with
    K = 5 up to +1.35e8 % and, even with the guard, +2150% (K = 5) and +98.6%
    (K = 2): GCV's per-smoother trace corrections are exploited by large-xi
    combinations (the cancellation sum_m c_m / rho_m ~ 0 hides the residual
    outside range(X)), hence the refusal. ``"safe"`` stayed within
    +0.5% of RidgeCV on average on every set and share (user guide, "Tuning benchmark").
    """

    def __init__(
        self,
        *,
        lams: ArrayLike = DEFAULT_LAMS,
        max_steps: int = 2,
        tuning: str = "safe",
        fit_intercept: bool = True,
        val_fraction: float = 0.2,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.lams = lams
        self.max_steps = max_steps
        self.tuning = tuning
        self.fit_intercept = fit_intercept
        self.val_fraction = val_fraction
        self.random_state = random_state

    def _check_params(self) -> tuple[NDArray[np.float64], int, bool]:
        lams = _check_lams(self.lams)
        K = check_steps(self.max_steps, "max_steps")
        if not isinstance(self.tuning, str) or self.tuning not in TUNING_RULES:
            raise ValueError(f"tuning must be one of {TUNING_RULES}, got {self.tuning!r}")
        if self.tuning == "gcv" and K > GCV_MAX_STEPS:
            raise ValueError(
                f"tuning='gcv' supports max_steps <= {GCV_MAX_STEPS}, got max_steps={K}: "
                "for k >= 2 steps the GCV-optimal xi exploit GCV's approximation and "
                "the chosen models can be arbitrarily bad; use tuning='safe' (or "
                "'loo') for more steps"
            )
        fit_intercept = _check_bool(self.fit_intercept, "fit_intercept")
        if self.tuning == "holdout":
            _check_fraction(self.val_fraction, "val_fraction")
        return lams, K, fit_intercept

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
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
        extra: _RuleExtra = None
        if self.tuning == "holdout":
            table, train_s2 = self._holdout(X, y, sample_weight, lams, K, fit_intercept)
            reproducible = table.valid.copy()
            # the schedule is refit on all samples: keep it admissible on both spectra
            table.valid &= admissible(train_s2, lams, table.xi) & admissible(dec.s2, lams, table.xi)
            best = select(table)
        else:
            table, best, extra = select_rule(self.tuning, prep, dec, lams, K)
            reproducible = table.valid
        if best is None:
            raise ValueError(
                f"no value in lams gives a defined {self.tuning!r} risk estimate with "
                f"n_samples={n}, n_features={X.shape[1]} (e.g. leverage 1 at lam=0); "
                "use positive lams or more samples"
            )
        if isinstance(extra, str):
            warnings.warn(extra, TuningWarning, stacklevel=2)
        raw = np.unravel_index(
            np.argmin(np.where(np.isnan(table.risk), np.inf, table.risk)), table.risk.shape
        )
        best_reproducible = np.min(np.where(reproducible, table.risk, np.inf))
        if (
            self.tuning != "safe"
            and not reproducible[raw]
            and table.risk[raw] * (1.0 + WARN_RTOL) < best_reproducible
        ):
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
        self.cv_results_ = {
            "lams": lams,
            "k": np.arange(K + 1),
            "risk": table.risk,
            "xi": table.xi,
            "valid": table.valid,
        }
        self.z_score_ = np.nan
        if self.tuning == "safe":
            assert isinstance(extra, tuple)  # select_rule's "safe" extra
            nested, self.z_score_ = extra
            self.cv_results_["nested_risk"] = nested
            self.best_score_ = -float(nested[l_best, k_best])
        else:
            self.best_score_ = -float(table.risk[l_best, k_best])
        return self

    def _holdout(
        self,
        X: NDArray[np.floating[Any]],
        y: NDArray[np.floating[Any]],
        sample_weight: NDArray[np.float64] | None,
        lams: NDArray[np.float64],
        K: int,
        fit_intercept: bool,
    ) -> tuple[TuningTable, NDArray[np.float64]]:
        n = X.shape[0]
        rng = check_random_state(self.random_state)
        n_val = min(n - 1, max(1, int(round(self.val_fraction * n))))
        perm = rng.permutation(n)
        val, tr = perm[:n_val], perm[n_val:]
        sw_tr = sw_val = None
        if sample_weight is not None:
            sw_tr, sw_val = sample_weight[tr], sample_weight[val]
            if not sw_tr.sum() > 0 or not sw_val.sum() > 0:
                raise ValueError(
                    "sample_weight is zero on the whole training or validation "
                    "part of the holdout split; change random_state"
                )
        table = holdout_table(
            X[tr],
            y[tr],
            X[val],
            y[val],
            lams,
            K,
            fit_intercept=fit_intercept,
            sample_weight=sw_tr,
            sample_weight_val=sw_val,
        )
        train_s2 = _Prepared(X[tr], y[tr], sw_tr, fit_intercept).decompose()[0].s2
        return table, train_s2
