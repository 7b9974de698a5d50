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

import numpy as np

from ..core import self_distill
from ..datasets import load_split
from ..decomposition import decompose
from ..sweep import sweep_optimal_validation

__all__ = ["DEFAULT_DATASETS", "lambda_grid", "run_protocol", "summarize", "alignment"]

DEFAULT_DATASETS = ("air_quality", "airfoil", "appliances_energy")


def lambda_grid(n_train, num=41):
    """lambda / n_train log-spaced over [1e-6, 1e2] (features are standardized)."""
    return n_train * np.logspace(-6, 2, num)


def _stack_splits(name, seeds, val_fraction, test_fraction):
    splits = [load_split(name, seed=s, val_fraction=val_fraction, test_fraction=test_fraction)
              for s in seeds]
    return {key: np.stack([getattr(sp, key) for sp in splits])
            for key in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")}


def run_protocol(name, seeds, *, max_steps=5, val_fraction=0.2, test_fraction=0.2,
                 num_lams=41, backend="numba"):
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
    val_mse, xi = sweep_optimal_validation(dec, None, data["X_val"], data["y_val"], lams,
                                           max_steps, backend=backend)
    rows = {key: [] for key in ("dataset", "seed", "k", "lam", "xi", "val_mse", "test_mse")}
    for b, seed in enumerate(seeds):
        for k in range(max_steps + 1):
            usable = np.ones(lams.size, bool) if k == 0 else np.all(
                np.isfinite(xi[b, :, k - 1, :k]), axis=-1)
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


def summarize(rows):
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
    keys = ("dataset", "k", "test_mse_mean", "test_mse_std", "change_vs_ridge",
            "paired_change_mean", "paired_change_std", "n_seeds")
    out = {key: [] for key in keys}

    def mean_std(vals):
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
            for key, value in zip(keys, (name, int(k), mean, std, (mean - ridge) / ridge,
                                         paired_mean, paired_std,
                                         int(np.isfinite(vals).sum()))):
                out[key].append(value)
    return {key: np.asarray(col) for key, col in out.items()}


def alignment(name, seed=0, *, val_fraction=0.2, test_fraction=0.2, num_lams=41):
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
