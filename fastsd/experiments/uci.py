r"""The paper's practical protocol on the three UCI datasets (Table 1).

For each dataset and seed: a random train / validation / test split
(features standardized and the target centred with training statistics
only); for every lambda on a log grid and every k = 1..K the validation-optimal
xi in closed form (:func:`fastsd.sweep_optimal_validation`, quadratic in
xibar); lambda chosen by validation MSE too (ridge: k = 0); then the test MSE
of the chosen (lambda, xi) refit on the training set. Seeds are batched: all
splits of one dataset have the same sizes, so they go through the sweep engine
as one batch of problems.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from ..datasets import load_dataset, load_split, standardize
from ..decomposition import decompose
from ..engine.single import self_distill
from ..engine.sweeps import sweep_optimal_validation
from ..exceptions import ignore_unrecoverable
from ..tables import format_value
from .tuning import LAMS

__all__ = [
    "DEFAULT_DATASETS",
    "lambda_grid",
    "run_protocol",
    "summarize",
    "alignment",
    "CURVE_SHARES",
    "learning_curve",
    "summarize_curves",
    "curve_paragraph",
]

DEFAULT_DATASETS = ("air_quality", "airfoil", "appliances_energy")


def lambda_grid(n_train: int, num: int = 41) -> NDArray[np.float64]:
    """lambda / n_train log-spaced over [1e-6, 1e2] (features are standardized)."""
    return n_train * np.logspace(-6, 2, num)


def _stack_splits(
    name: str, seeds: Iterable[int], val_fraction: float, test_fraction: float
) -> dict[str, NDArray[np.float64]]:
    splits = [
        load_split(name, seed=s, val_fraction=val_fraction, test_fraction=test_fraction)
        for s in seeds
    ]
    return {
        key: np.stack([getattr(sp, key) for sp in splits])
        for key in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")
    }


def run_protocol(
    name: str,
    seeds: Sequence[int],
    *,
    max_steps: int = 5,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    num_lams: int = 41,
    backend: str = "numba",
) -> dict[str, NDArray[Any]]:
    """Validation-tuned ridge and k-step SD on one dataset, every seed.

    Parameters
    ----------
    name : str
        A :data:`fastsd.datasets.DATASETS` name.
    seeds : sequence of int
    max_steps : int, default=5
        K; k = 0 is ridge.
    val_fraction, test_fraction : float, default=0.2
    num_lams : int, default=41
    backend : {"numba", "numpy"}

    Returns
    -------
    rows : dict of 1-D arrays
        One row per (seed, k): ``dataset, seed, k, lam, xi`` (space-separated
        string), ``val_mse, test_mse``. Where every lambda's k-step xi is too
        ill-conditioned to recover (NaN), the row is NaN (never silently ridge).
    """
    data = _stack_splits(name, seeds, val_fraction, test_fraction)
    n_train = data["X_train"].shape[1]
    lams = lambda_grid(n_train, num_lams)
    dec = decompose(data["X_train"], data["y_train"])
    with ignore_unrecoverable():  # masked below: a lambda with NaN xi is not usable
        val_mse, xi = sweep_optimal_validation(
            dec, None, data["X_val"], data["y_val"], lams, max_steps, backend=backend
        )
    rows: dict[str, list[Any]] = {
        key: [] for key in ("dataset", "seed", "k", "lam", "xi", "val_mse", "test_mse")
    }
    for b, seed in enumerate(seeds):
        for k in range(max_steps + 1):
            usable = (
                np.ones(lams.size, bool)
                if k == 0
                else np.all(np.isfinite(xi[b, :, k - 1, :k]), axis=-1)
            )
            score = np.where(usable, val_mse[b, :, k], np.inf)
            if not np.isfinite(score).any():
                lam, schedule, best_val, test = np.nan, np.full(k, np.nan), np.nan, np.nan
            else:
                li = int(np.argmin(score))
                lam, best_val = lams[li], val_mse[b, li, k]
                schedule = xi[b, li, k - 1, :k] if k else np.zeros(0)
                theta = self_distill(data["X_train"][b], data["y_train"][b], lam, schedule)
                test = float(np.mean((data["y_test"][b] - data["X_test"][b] @ theta) ** 2))
            rows["dataset"].append(name)
            rows["seed"].append(seed)
            rows["k"].append(k)
            rows["lam"].append(lam)
            rows["xi"].append(" ".join(f"{v:.6g}" for v in schedule))
            rows["val_mse"].append(best_val)
            rows["test_mse"].append(test)
    return {key: np.asarray(col) for key, col in rows.items()}


def summarize(rows: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    """Mean and standard deviation over seeds of the test MSE per (dataset, k).

    Returns
    -------
    dict of 1-D arrays
        ``dataset, k, test_mse_mean, test_mse_std``; ``change_vs_ridge``
        (relative change of the mean test MSE against ridge, negative =
        better); ``paired_change_mean, paired_change_std`` (mean and std over
        seeds of each split's own test_mse_k / test_mse_ridge - 1, which
        removes the split-to-split variance shared by all estimators);
        ``n_seeds``.
    """
    keys = (
        "dataset",
        "k",
        "test_mse_mean",
        "test_mse_std",
        "change_vs_ridge",
        "paired_change_mean",
        "paired_change_std",
        "n_seeds",
    )
    out: dict[str, list[Any]] = {key: [] for key in keys}

    def mean_std(vals: NDArray[np.float64]) -> tuple[float, float]:
        ok = vals[np.isfinite(vals)]
        return (ok.mean() if ok.size else np.nan), (ok.std(ddof=1) if ok.size > 1 else 0.0)

    for name in dict.fromkeys(rows["dataset"]):
        here = rows["dataset"] == name
        ridge_runs = rows["test_mse"][here & (rows["k"] == 0)]
        ridge = np.nanmean(ridge_runs)
        for k in np.unique(rows["k"][here]):
            vals = rows["test_mse"][here & (rows["k"] == k)]
            mean, std = mean_std(vals)
            paired_mean, paired_std = mean_std(vals / ridge_runs - 1.0)
            for key, value in zip(
                keys,
                (
                    name,
                    int(k),
                    mean,
                    std,
                    (mean - ridge) / ridge,
                    paired_mean,
                    paired_std,
                    int(np.isfinite(vals).sum()),
                ),
            ):
                out[key].append(value)
    return {key: np.asarray(col) for key, col in out.items()}


def alignment(
    name: str,
    seed: int = 0,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    num_lams: int = 41,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The paper's alignment diagnostic on one training split.

    Squared cosine between the validation-tuned ridge solution and each
    eigenvector of X^T X: repeated SD helps most when this mass sits on few
    eigen-directions with distinct eigenvalues (Theorem 1's assumptions).

    Returns
    -------
    eigenvalues : ndarray of shape (p,)
        Descending eigenvalues of X_train^T X_train.
    cos2 : ndarray of shape (p,)
        (v_j^T theta_ridge)^2 / ||theta_ridge||^2; sums to 1.
    """
    data = _stack_splits(name, [seed], val_fraction, test_fraction)
    X, y = data["X_train"][0], data["y_train"][0]
    lams = lambda_grid(X.shape[0], num_lams)
    dec = decompose(X, y)
    val_mse, _ = sweep_optimal_validation(dec, None, data["X_val"][0], data["y_val"][0], lams, 0)
    theta = self_distill(dec, None, lams[int(np.argmin(val_mse[:, 0]))], [])
    proj = dec.V.T @ theta
    return dec.s2, proj * proj / np.sum(proj * proj)


#: Training shares of the learning curves (of all rows; validation and test
#: are 20% each, so 60% is the paper's split).
CURVE_SHARES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6)
#: Models of the learning curves: ridge tuned on validation (fit on train),
#: validation-tuned k-step SD (fit on train), and RidgeCV on train + validation.
CURVE_MODELS = ("ridge_train", "sd_k1", "sd_k2", "sd_k5", "ridgecv_trainval")


def learning_curve(
    name: str,
    shares: Iterable[float] = CURVE_SHARES,
    seeds: Iterable[int] = range(10),
    *,
    steps: Sequence[int] = (1, 2, 5),
    num_lams: int = 41,
) -> dict[str, NDArray[Any]]:
    """Test MSE of validation-tuned SD and both ridge baselines vs the training share.

    For each seed the rows are permuted once: the first 20% are the test set,
    the next 20% the validation set, and the training set is the first
    ``share`` of all rows among the remaining 60% (so the training sets of one
    seed are nested and every share sees the same validation and test rows).

    Models (features standardized and target centred with the statistics of
    the rows each model is fit on):

    * ``ridge_train``: ridge fit on train, lambda chosen on validation (the
      paper's baseline);
    * ``sd_k{k}``: k-step SD fit on train, lambda and xi chosen on
      validation (closed form, :func:`fastsd.estimators._holdout.holdout_table`);
    * ``ridgecv_trainval``: scikit-learn's ``RidgeCV`` (exact LOO over
      ``np.logspace(-4, 4, 41)``) on train + validation: the fair baseline,
      which uses the validation rows for fitting too.

    Returns
    -------
    rows : dict of 1-D arrays
        ``dataset, share, n_train, seed, model, lam, test_mse``.
    """
    from sklearn.linear_model import RidgeCV

    from ..estimators._holdout import holdout_table
    from ..estimators._tuning import select

    X_all, y_all, _ = load_dataset(name)
    N = y_all.shape[0]
    n_test = n_val = int(round(0.2 * N))
    K = max(steps)
    rows: dict[str, list[Any]] = {
        c: [] for c in ("dataset", "share", "n_train", "seed", "model", "lam", "test_mse")
    }

    def add(share: float, n: int, seed: int, model: str, lam: float, mse: float) -> None:
        for c, v in zip(rows, (name, share, n, seed, model, lam, mse)):
            rows[c].append(v)

    for seed in seeds:
        perm = np.random.default_rng([47, seed]).permutation(N)
        test, val, rest = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
        for share in shares:
            n = min(max(int(round(share * N)), 3), rest.size)
            train = rest[:n]
            (tr, va, te), _ = standardize(
                (X_all[train], y_all[train]), (X_all[val], y_all[val]), (X_all[test], y_all[test])
            )
            lams = lambda_grid(n, num_lams)
            table = holdout_table(tr[0], tr[1], va[0], va[1], lams, K)
            for k in (0,) + tuple(steps):
                best = select(table, k)
                if best is None:
                    add(share, n, seed, "ridge_train" if k == 0 else f"sd_k{k}", np.nan, np.nan)
                    continue
                lam = lams[best[0]]
                theta = self_distill(tr[0], tr[1], lam, table.xi[best[0], k, :k])
                mse = float(np.mean((te[1] - te[0] @ theta) ** 2))
                add(share, n, seed, "ridge_train" if k == 0 else f"sd_k{k}", lam, mse)
            both = np.concatenate([train, val])
            (tv, te2), _ = standardize((X_all[both], y_all[both]), (X_all[test], y_all[test]))
            rcv = RidgeCV(alphas=LAMS).fit(tv[0], tv[1])
            add(
                share,
                n,
                seed,
                "ridgecv_trainval",
                float(rcv.alpha_),
                float(np.mean((te2[1] - rcv.predict(te2[0])) ** 2)),
            )
    return {c: np.asarray(v) for c, v in rows.items()}


def summarize_curves(rows: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    """Paired change of each SD model against both baselines, per (dataset, share).

    Returns
    -------
    dict of 1-D arrays
        ``dataset, share, n_train, model, baseline`` (``ridge_train`` or
        ``ridgecv_trainval``), ``change_mean, change_se`` (mean and standard
        error over seeds of test_mse / baseline test_mse - 1), ``n_seeds``.
    """
    keys = (
        "dataset",
        "share",
        "n_train",
        "model",
        "baseline",
        "change_mean",
        "change_se",
        "n_seeds",
    )
    out: dict[str, list[Any]] = {k: [] for k in keys}
    for name in dict.fromkeys(rows["dataset"].tolist()):
        for share in dict.fromkeys(rows["share"][rows["dataset"] == name].tolist()):
            here = (rows["dataset"] == name) & (rows["share"] == share)

            def mse(model: str) -> NDArray[np.float64]:
                sel = here & (rows["model"] == model)  # noqa: B023 (called in this iteration)
                order = np.argsort(rows["seed"][sel])
                return cast("NDArray[np.float64]", rows["test_mse"][sel][order])

            n = int(rows["n_train"][here][0])
            for base in ("ridge_train", "ridgecv_trainval"):
                for model in dict.fromkeys(rows["model"][here].tolist()):
                    if not model.startswith("sd_") and not (
                        base == "ridgecv_trainval" and model == "ridge_train"
                    ):
                        continue
                    ch = mse(model) / mse(base) - 1.0
                    ch = ch[np.isfinite(ch)]
                    m = ch.size
                    vals = (
                        name,
                        share,
                        n,
                        model,
                        base,
                        ch.mean() if m else np.nan,
                        ch.std(ddof=1) / np.sqrt(m) if m > 1 else np.nan,
                        m,
                    )
                    for k, v in zip(keys, vals):
                        out[k].append(v)
    return {k: np.asarray(v) for k, v in out.items()}


def curve_paragraph(
    summary: Mapping[str, NDArray[Any]],
    names: Mapping[str, str] | None = None,
) -> str:
    """One paragraph with the measured numbers: where validation-tuned SD beats each baseline.

    A gain is counted where the mean change is below -2 standard errors. With one seed
    there are no standard errors, and the paragraph says so instead of counting gains.
    """
    names = names or {}
    one_seed = bool(np.all(summary["n_seeds"] < 2))
    parts = []
    best_train = (0.0, None)
    for name in dict.fromkeys(summary["dataset"].tolist()):
        here = summary["dataset"] == name
        text = []
        for base, label in (
            ("ridge_train", "ridge on train"),
            ("ridgecv_trainval", "RidgeCV on train + validation"),
        ):
            sel = (
                here
                & (summary["baseline"] == base)
                & np.char.startswith(summary["model"].astype(str), "sd_")
            )
            i = int(np.nanargmin(np.where(sel, summary["change_mean"], np.inf)))
            wins = sel & (summary["change_mean"] + 2 * summary["change_se"] < 0)
            shares = sorted(
                {f"{100 * s:g}%" for s in summary["share"][wins]}, key=lambda x: float(x[:-1])
            )
            se = summary["change_se"][i]
            text.append(
                f"vs {label} the best is {_percent(summary['change_mean'][i])}"
                + (f" ± {100 * se:.1f}%" if np.isfinite(se) else "")
                + " "
                f"({summary['model'][i][3:].replace('k', 'k = ')}, "
                f"{100 * summary['share'][i]:g}% share, n = {summary['n_train'][i]})"
                + (
                    ""
                    if one_seed
                    else f", significant gains (mean + 2 s.e. < 0) at "
                    f"{', '.join(shares) if shares else 'no share'}"
                )
            )
            if base == "ridge_train" and summary["change_mean"][i] < best_train[0]:
                best_train = (summary["change_mean"][i], name)
        fair = (
            here & (summary["baseline"] == "ridgecv_trainval") & (summary["model"] == "ridge_train")
        )
        fair_txt = ""
        if np.any(fair):
            j = np.flatnonzero(fair)
            k = j[int(np.argmax(summary["change_mean"][j]))]
            fair_txt = (
                f"; ridge on train alone is up to {_percent(summary['change_mean'][k])} "
                f"worse than RidgeCV on train + validation "
                f"({100 * summary['share'][k]:g}% share)"
            )
        parts.append(f"**{names.get(name, name)}**: " + "; ".join(text) + fair_txt + ".")
    sd = np.char.startswith(summary["model"].astype(str), "sd_")
    fair = sd & (summary["baseline"] == "ridgecv_trainval")
    fair_best = float(np.nanmin(np.where(fair, summary["change_mean"], np.inf)))
    fair_wins = int(np.sum(fair & (summary["change_mean"] + 2 * summary["change_se"] < 0)))
    where = f" ({names.get(best_train[1], best_train[1])})" if best_train[1] else ""
    closing = (
        f'The paper\'s "up to 47%" is of the size of the gain over ridge on train at '
        f"small training shares (here up to {_percent(best_train[0])}{where}). Against "
        f"RidgeCV on train + validation the best mean change of any SD model at any "
        f"share is {_percent(fair_best)}"
    )
    if one_seed:
        closing += (
            " (1 seed: no error bars; more seeds: `fastsd reproduce` without --quick, or --full)."
        )
    else:
        closing += f", with {fair_wins} significant gains out of {int(fair.sum())} " + (
            "(set, share, k) cells: the gain over ridge-on-train comes from the validation "
            "rows, which the paper's ridge never fits on, not from distillation."
            if fair_wins == 0
            else "(set, share, k) cells: part of the gain survives the fair comparison "
            "(see the table)."
        )
    return " ".join(parts) + " " + closing


def _percent(change: float) -> str:
    """A relative change as a signed percentage with one decimal (no sign on 0.0%)."""
    return format_value(100 * change, "{:+.1f}") + "%"
