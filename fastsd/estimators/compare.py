r"""Test-MSE comparison of the tuning rules (holdout vs gcv vs loo) over splits.

:func:`tuning_table` takes any list of splits
``(X_train, y_train, X_val, y_val, X_test, y_test)`` (seeds of a dataset or
of a synthetic family) and returns, for each tuning rule and each model
column (ridge, 1-step, 2-step, ..., best k <= K), the test MSE of every split
and its mean and standard deviation; :func:`format_tuning_table` renders it
as a Markdown table of ``mean ± std``.

Protocol (per split):

* ``holdout`` (the paper's rule): fit on the training part, tune lambda and
  xi (and k for the last column) on the validation part, evaluate the
  training-set fit on the test part.
* ``gcv`` / ``loo``: no held-out data is needed, so (with ``pool=True``,
  the default) they fit and tune on training and validation parts together;
  ``pool=False`` restricts them to the training part (same data as holdout's
  fit, to isolate the rule itself).

A fixed-k column uses that rule's best lambda (and xi) for exactly k steps;
the last column lets the rule also choose k <= K, as
:class:`~fastsd.estimators.SelfDistilledRidgeCV` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validation import check_steps
from ._base import _filter_coef, _lams_values, _Prepared
from ._cv import DEFAULT_LAMS, GCV_MAX_STEPS, tuning_rule_table
from ._holdout import holdout_table
from ._tuning import select

if TYPE_CHECKING:
    from ..decomposition import Decomposition

__all__ = ["tuning_table", "format_tuning_table"]


def _test_mse(
    prep: _Prepared,
    dec: Decomposition,
    Z: NDArray[np.float64],
    lam: float,
    xi: NDArray[np.float64],
    X_test: NDArray[np.float64],
    y_test: NDArray[np.float64],
) -> float:
    coef = _filter_coef(dec, Z, lam, xi)  # (T, d)
    intercept = prep.y_mean - coef @ prep.x_mean
    Y = y_test[:, None] if y_test.ndim == 1 else y_test
    err = Y - (X_test @ coef.T + intercept)
    return float(np.mean(err * err))


def tuning_table(
    splits: Iterable[Sequence[ArrayLike]],
    *,
    lams: ArrayLike = DEFAULT_LAMS,
    max_steps: int = 5,
    steps: Sequence[int] = (0, 1, 2),
    methods: Sequence[str] = ("holdout", "gcv", "loo"),
    fit_intercept: bool = True,
    pool: bool = True,
) -> dict[str, Any]:
    """Test MSE of each tuning rule and model column over a list of splits.

    Parameters
    ----------
    splits : iterable of tuples
        ``(X_train, y_train, X_val, y_val, X_test, y_test)``; y may be 1-D or
        2-D (targets share the tuned parameters).
    lams : sequence of float, default=tuple(np.logspace(-3, 3, 13))
    max_steps : int, default=5
        K for the "best k <= K" column.
    steps : sequence of int, default=(0, 1, 2)
        Fixed numbers of steps, one column each (0 = ridge); each <= max_steps.
    methods : sequence of {"holdout", "gcv", "loo"}, default=("holdout", "gcv", "loo")
    fit_intercept : bool, default=True
    pool : bool, default=True
        gcv/loo fit and tune on train + validation (True) or on train only.

    Returns
    -------
    dict
        ``"methods"`` (M,), ``"columns"`` (C,) labels, ``"mse"`` (S, M, C)
        test MSE per split (NaN where a rule had no defined estimate),
        ``"mean"`` and ``"std"`` (M, C) over splits (std with ddof=1 when
        S > 1, else 0), ``"lam"`` and ``"k"`` (S, M, C) chosen values.
    """
    lams = _lams_values(lams)
    K = check_steps(max_steps, "max_steps")
    steps = [check_steps(k, "steps") for k in steps]
    if any(k > K for k in steps):
        raise ValueError(f"steps must be <= max_steps={K}, got {steps}")
    methods = list(methods)
    for m in methods:
        if m not in ("holdout", "gcv", "loo"):
            raise ValueError(f"methods must be among ('holdout', 'gcv', 'loo'), got {m!r}")
    columns = ["ridge" if k == 0 else f"{k}-step" for k in steps] + [f"best k<={K}"]
    which: list[int | None] = list(steps) + [None]

    mse_splits: list[list[list[float]]] = []
    lam_out: list[list[list[float]]] = []
    k_out: list[list[list[int]]] = []
    for split in splits:
        X_tr, y_tr, X_val, y_val, X_te, y_te = (np.asarray(a, dtype=np.float64) for a in split)
        rows_mse: list[list[float]] = []
        rows_lam: list[list[float]] = []
        rows_k: list[list[int]] = []
        for method in methods:
            if method == "holdout":
                table = holdout_table(
                    X_tr, y_tr, X_val, y_val, lams, K, fit_intercept=fit_intercept
                )
                X_fit, y_fit = X_tr, y_tr
            else:
                X_fit = np.concatenate([X_tr, X_val]) if pool else X_tr
                y_fit = np.concatenate([y_tr, y_val]) if pool else y_tr
            prep = _Prepared(X_fit, y_fit, None, fit_intercept)
            dec, Z = prep.decompose()
            if method != "holdout":
                # GCV is refused for k >= 2 (SelfDistilledRidgeCV notes): its
                # columns past k = 1 are NaN and its "best k" is k <= 1
                K_rule = min(K, GCV_MAX_STEPS) if method == "gcv" else K
                table = tuning_rule_table(method, prep, dec, lams, K_rule)
            r_mse: list[float] = []
            r_lam: list[float] = []
            r_k: list[int] = []
            for k in which:
                best = None if k is not None and k > table.max_steps else select(table, k)
                if best is None:
                    r_mse.append(np.nan)
                    r_lam.append(np.nan)
                    r_k.append(-1)
                    continue
                l, kk = best
                xi = table.xi[l, kk, :kk]
                r_mse.append(_test_mse(prep, dec, Z, lams[l], xi, X_te, y_te))
                r_lam.append(lams[l])
                r_k.append(kk)
            rows_mse.append(r_mse)
            rows_lam.append(r_lam)
            rows_k.append(r_k)
        mse_splits.append(rows_mse)
        lam_out.append(rows_lam)
        k_out.append(rows_k)

    mse = np.asarray(mse_splits, dtype=np.float64).reshape(-1, len(methods), len(columns))
    S = mse.shape[0]
    with np.errstate(invalid="ignore"):
        mean = mse.mean(axis=0) if S else np.full(mse.shape[1:], np.nan)
        std = mse.std(axis=0, ddof=1) if S > 1 else np.zeros(mse.shape[1:])
    return {
        "methods": methods,
        "columns": columns,
        "mse": mse,
        "mean": mean,
        "std": std,
        "lam": np.asarray(lam_out, dtype=np.float64).reshape(mse.shape),
        "k": np.asarray(k_out, dtype=np.int64).reshape(mse.shape),
    }


def format_tuning_table(
    result: dict[str, Any], *, title: str | None = None, digits: int = 4
) -> str:
    """Markdown table of ``mean ± std`` test MSE, one row per tuning rule.

    Parameters
    ----------
    result : dict from :func:`tuning_table`
    title : str, optional
        Text of the first header cell (default "tuning").
    digits : int, default=4
        Significant digits.

    Returns
    -------
    str
    """
    head = [title or "tuning"] + list(result["columns"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, method in enumerate(result["methods"]):
        cells = [
            f"{m:.{digits}g} ± {s:.{digits}g}" for m, s in zip(result["mean"][i], result["std"][i])
        ]
        lines.append("| " + " | ".join([method] + cells) + " |")
    return "\n".join(lines)
