r"""SelfDistilledRidgeCV: lambda, k and xi chosen from one decomposition."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from .._validation import check_result_size
from ..exceptions import IllConditionedXiWarning, TuningWarning
from ..math.reparam import xi_to_xibar
from ._base import (
    LAM,
    _filter_coef,
    _fit_context,
    _lams_values,
    _LinearPredictMixin,
    _Prepared,
    _set_linear_attributes,
)
from ._gcv import gcv_table
from ._holdout import holdout_table
from ._loo import loo_columns, loo_table, loo_table_from_columns, nested_loo, nested_loo_exact
from ._tuning import SafeChoice, TuningTable, admissible, select, select_safe

if TYPE_CHECKING:
    from typing import Self

    from ..decomposition import Decomposition

#: ``extra`` of :func:`select_rule`: (nested risk, the safe rule's choice) for
#: "safe", the GCV guard's message or None otherwise.
_RuleExtra = Union[tuple[NDArray[np.float64], SafeChoice], str, None]

__all__ = ["SelfDistilledRidgeCV", "DEFAULT_LAMS", "TUNING_RULES"]

#: Default lambda grid: ``np.logspace(-3, 3, 13)`` (as a tuple, so that it is a
#: valid scikit-learn default parameter value).
DEFAULT_LAMS = tuple(np.logspace(-3, 3, 13).tolist())

TUNING_RULES = ("safe", "loo", "gcv", "holdout")

#: GCV is refused for more steps than this (see the SelfDistilledRidgeCV notes).
GCV_MAX_STEPS = 1
#: ``max_steps=None``: this many steps (GCV_MAX_STEPS for ``tuning="gcv"``).
DEFAULT_STEPS = 2
#: GCV guard: the chosen SD entry's exact LOO risk may exceed its GCV estimate
#: by at most this factor times ridge's own LOO/GCV ratio at the same lambda.
GCV_GUARD = 1.5

#: Warn when an entry whose optimal xi is not recoverable beats the chosen one
#: by more than this relative margin.
WARN_RTOL = 1e-3

#: What each rule minimizes (for ``selection_reason_``).
_CRITERION = {"loo": "leave-one-out risk", "gcv": "GCV risk", "holdout": "validation MSE"}


def tuning_shapes(L: int, K: int, n: int, p: int, T: int) -> list[tuple[int, ...]]:
    """An upper bound on the float64 tables a tuning rule allocates.

    The LOO columns (L, K + 1, T, n), GCV's residual basis (L, K + 1, T p)
    and the schedules (L, K + 1, K), with the holdout rule's per-lambda
    design of the same order: one array (L, K + 1, T (n + p) + K). The
    estimators refuse sizes over :data:`fastsd._config.MAX_RESULT_BYTES`
    before allocating any of it.
    """
    return [(L, K + 1, T * (n + p) + K)]


def tuning_rule_table(
    tuning: str, prep: _Prepared, dec: Decomposition, lams: NDArray[np.float64], max_steps: int
) -> TuningTable:
    """The risk table of the one-shot rule ``"gcv"`` or ``"loo"`` on prepared data."""
    args = (dec.U, dec.s2, prep.Y)
    if tuning == "gcv":
        return gcv_table(*args, prep.w_sum, prep.fit_intercept, lams, max_steps)
    return loo_table(*args, prep.sqrt_w, prep.w_sum, prep.fit_intercept, lams, max_steps)


def select_rule(
    tuning: str, prep: _Prepared, dec: Decomposition, lams: NDArray[np.float64], max_steps: int
) -> tuple[TuningTable, tuple[int, int] | None, _RuleExtra]:
    """(table, best, extra) of a one-shot rule on prepared data.

    ``"safe"``: :func:`~fastsd.estimators._tuning.select_safe` on the LOO
    table, its nested risks and the exact nested LOO of the candidate
    (``extra`` = (nested risk, the :class:`~fastsd.estimators._tuning.SafeChoice`));
    ``"loo"``: least LOO risk; ``"gcv"``: least GCV risk, then the guard
    :func:`gcv_guard` (``extra`` = the guard's message or None).
    """
    if tuning == "safe":
        data = (dec.U, dec.s2, prep.Y, prep.sqrt_w, prep.w_sum, prep.fit_intercept)
        cols = loo_columns(*data, lams, max_steps)
        nested, losses = nested_loo(*cols, prep.w_sum)
        table = loo_table_from_columns(*cols, dec.s2, prep.w_sum, lams)
        points = np.ones(prep.Y.shape[0], bool) if prep.sqrt_w is None else prep.sqrt_w > 0
        table.valid &= admissible(dec.s2, table.lams, table.xi)

        def verify(l: int, k: int, rows: NDArray[np.intp]) -> tuple[NDArray[np.float64], bool]:
            exact, defined = nested_loo_exact(*data, float(lams[l]), k, rows)
            return exact[k], defined

        choice = select_safe(table, nested, losses, points, verify)
        return table, choice.best, (nested, choice)
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
    max_steps : int or None, default=None
        K: the largest number of self-distillation steps considered
        (0: ridge only, i.e. ``RidgeCV``). None: 2, and 1 for
        ``tuning="gcv"`` (the most GCV accepts).
    tuning : {"safe", "loo", "gcv", "holdout"}, default="safe"
        * ``"safe"`` (default): built not to lose to ``RidgeCV``. Ridge
          keeps its exact-LOO lambda (``RidgeCV``'s choice). Every
          (lambda, k >= 1) gets its LOO-optimal xi and is scored by an
          honest risk, the leave-one-out of the xi fit itself (nested LOO,
          closed form: :func:`fastsd.estimators._loo.nested_loo`); schedules
          whose per-direction shrinkage phi_j r_j leaves [0, 1] are excluded
          (inadmissible: beaten direction by direction by clipping, for every
          theta*; :func:`fastsd.estimators._tuning.admissible`). The best SD
          entry replaces ridge only if its nested risk is lower by more than
          one standard error of the paired per-sample difference, and again
          in the *exact* nested LOO (:func:`fastsd.estimators._loo.nested_loo_exact`,
          which also leaves point i out of the other points' LOO residuals;
          at n close to d the closed form is far too optimistic without
          it). Otherwise the model is ``RidgeCV``'s, and ``selection_``
          says so. Cost: the LOO rule plus one thin QR of n x K per lambda,
          and when SD passes the first test, O(K m n p) for the exact check
          on m = min(n, 512) points.
        * ``"loo"``: least exact leave-one-out error of the whole k-step
          procedure (teacher and every student refit without the point),
          computed by rank-one downdates in the eigenbasis, no refits. The
          minimum over xi is optimistic: this rule often loses to ridge.
        * ``"gcv"``: one-shot generalized cross-validation (Dang, Patil &
          Rinaldo), k <= 1 only (``max_steps`` 2 or more is refused); a guard
          compares the chosen entry's GCV estimate with its exact LOO risk
          and falls back to ridge with a :class:`TuningWarning` when GCV was
          exploited.
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
    selection_ : {"ridge", "sd"}
        The family of the fitted model (``"ridge"``: k = 0; with
        ``tuning="safe"`` it is then ``RidgeCV``'s model).
    selection_reason_ : str
        One line with the numbers behind ``selection_``: for ``"safe"`` the
        candidate SD entry and the test it passed or failed, for ``"gcv"``
        the guard's message when it fell back to ridge.
    best_score_ : float
        Minus the estimated risk (mean squared error) of the chosen model
        (for ``"safe"``: its closed-form nested LOO risk).
    z_score_ : float
        ``"safe"`` only, a diagnostic: mean / standard error of the
        per-sample difference (SD entry's nested LOO loss minus ridge's LOO
        loss) in the last test made, the exact one if the candidate reached
        it; negative favours SD. NaN when there was no SD candidate, and for
        the other rules.
    cv_results_ : dict
        ``"lams"`` (L,), ``"k"`` (K + 1,), ``"risk"`` (L, K + 1): estimated
        risk (GCV estimate, mean squared LOO error or validation MSE, weighted
        by sample_weight, averaged over targets) at the best xi for each
        (lambda, k); ``"xi"`` (L, K + 1, K): those xi (row k in the first k
        entries, NaN after and where the optimal xi cannot be recovered to
        working accuracy); ``"valid"`` (L, K + 1): selectable entries (for
        ``"safe"`` also admissible);
        ``"nested_risk"`` (L, K + 1), ``"safe"`` only: the closed-form
        nested LOO risks.
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
    optimal xi add. On the data sets of :mod:`fastsd.experiments.tuning` (20
    paired splits at 1%, 10%, 60% training shares) ``"loo"`` lost up to
    +2949% test MSE against RidgeCV on average (Diabetes, n = 4), GCV with
    K = 5 up to +1.35e8 % and, even with the guard, +2150% (K = 5) and +98.6%
    (K = 2): GCV's per-smoother trace corrections are exploited by large-xi
    combinations (the cancellation sum_m c_m / rho_m ~ 0 hides the residual
    outside range(X)), hence the refusal. The benchmark's regime grid and
    its held-out half, for ``"safe"``, are in the user guide ("Tuning").
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "lams": ["array-like", LAM],
        "max_steps": [Interval(Integral, 0, None, closed="left"), None],
        "tuning": [StrOptions(set(TUNING_RULES))],
        "fit_intercept": ["boolean"],
        "val_fraction": [Interval(Real, 0.0, 1.0, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        lams: ArrayLike = DEFAULT_LAMS,
        max_steps: int | None = None,
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

    def _steps(self) -> int:
        """K from ``max_steps`` (None: DEFAULT_STEPS, GCV_MAX_STEPS for "gcv")."""
        if self.max_steps is None:
            return GCV_MAX_STEPS if self.tuning == "gcv" else DEFAULT_STEPS
        K = int(self.max_steps)
        if self.tuning == "gcv" and K > GCV_MAX_STEPS:
            raise ValueError(
                f"tuning='gcv' supports max_steps <= {GCV_MAX_STEPS}, got max_steps={K}: "
                "for k >= 2 steps the GCV-optimal xi exploit GCV's approximation and "
                "the chosen models can be arbitrarily bad; use tuning='safe' (or "
                "'loo') for more steps"
            )
        return K

    @_fit_context
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
        lams = _lams_values(self.lams)
        K = self._steps()
        fit_intercept = bool(self.fit_intercept)
        X, y, sample_weight = self._validate_fit_data(X, y, sample_weight)
        n, d = X.shape
        if n < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples to estimate a risk, "
                f"got n_samples={n}"
            )
        check_result_size(
            f"{type(self).__name__}(max_steps={K}) with {lams.size} lams",
            tuning_shapes(lams.size, K, n, min(n, d), 1 if y.ndim == 1 else y.shape[1]),
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
                f"n_samples={n}, n_features={d} (e.g. leverage 1 at lam=0); "
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
        self.selection_ = "sd" if self.k_ else "ridge"
        if isinstance(extra, tuple):  # select_rule's "safe" extra
            nested, choice = extra
            self.selection_, self.selection_reason_ = choice.selection, choice.reason
            self.z_score_ = choice.z
            self.cv_results_["nested_risk"] = nested
            self.best_score_ = -float(nested[l_best, k_best])
            return self
        self.selection_reason_ = (
            extra
            if isinstance(extra, str)
            else f"tuning={self.tuning!r}: least {_CRITERION[self.tuning]} at "
            f"k={self.k_}, lam={self.lam_:.4g}"
        )
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
