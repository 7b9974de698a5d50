r"""Tuning benchmark: SelfDistilledRidgeCV's rules against scikit-learn's RidgeCV, cell by cell.

A *cell* is one data family at one training size; in each cell every rule
and ``sklearn.linear_model.RidgeCV`` are fit on the same training rows with
the same preprocessing (features standardized, target centred with training
statistics) and the same 41-value grid ``np.logspace(-4, 4, 41)``, and

    change = error(rule) / error(RidgeCV) - 1      (negative: better than RidgeCV)

is recorded per split. Cells:

* the **regime grid**: ``sklearn.datasets.make_regression`` with d = 80
  features, n_train / d in {0.25, 0.5, 0.8, 1, 1.25, 2, 4, 16}, effective
  rank full or d / 8 = 10, and noise none, low or high (noise sd 0, 0.25 and
  2 times the sd of the noiseless target); one data set of n_train * 5 / 4
  rows per cell, 5-fold cross-validation repeated 6 times (30 splits);
  error = test MSE on the held-out fold.
* the **data sets**: the three bundled UCI sets (:mod:`fastsd.datasets`),
  scikit-learn's ``load_diabetes`` and the generated ``make_friedman1``
  (n = 2000, noise sd 1, seed 0) at training shares 1%, 10%, 60%, the four
  real ones also at n_train = d and 2 d (random training rows, all others
  test; error = test MSE), and the random-design Theorem 1 family (d = 8,
  s_j^2 / n = 1 - (j - 1)/16, theta* the top eigenvector of Sigma,
  ||theta*|| = 1) at sigma^2 = 0.25, 1, 4, drawn from a pool of 6400 rows
  (error = population excess risk ||theta_hat - theta*||^2_Sigma; here the
  oracle is known: the filter on the training eigenbasis minimizing the
  expected population risk, which k = d-step SD with the oracle xi
  realises); 20 random splits per cell.

Every cell belongs to one of two halves, fixed by :data:`HALF_SEED` before
any result of the held-out half was seen (:func:`cell_half`): the safe
rule's margin is calibrated on the ``"calibration"`` half and judged on the
``"held-out"`` half against the bounds mean <= :data:`BOUND_MEAN` and 95th
percentile <= :data:`BOUND_P95` per cell.

Rules: ``safe`` (the default of SelfDistilledRidgeCV), ``loo``, ``gcv``
(k <= 1, the most it accepts), ``holdout`` (the paper's rule, 20% of the
training rows held out and refit on all), each with ``max_steps`` 2, and
``oracle`` where theta* is known.

``python -m fastsd.experiments.tuning --full --out DIR`` runs the full
benchmark, without ``--full`` the reduced one (6 splits per regime cell with
n_train / d <= 4, 5 per data-set cell; about a minute on 2 cores);
:func:`run_benchmark` and :func:`write_benchmark` are the library entry
points; ``fastsd reproduce`` runs the reduced benchmark (the full one with
``--full``, a 4-cell one with ``--quick``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from ..datasets import dataset_info, load_dataset, standardize
from ..plotting import plot_regime_map, plot_tuning_benchmark
from ..problems import theorem1_family
from ..tables import format_value, write_csv

__all__ = [
    "BENCH_SETS",
    "BOUND_MEAN",
    "BOUND_P95",
    "Cell",
    "HALF_SEED",
    "LAMS",
    "REGIME_RATIOS",
    "RULES",
    "SHARES",
    "SIZES",
    "benchmark_cells",
    "bound_failures",
    "cell_half",
    "display_name",
    "format_benchmark",
    "format_regime",
    "gap_closure",
    "gcv_evidence",
    "run_benchmark",
    "summarize_benchmark",
    "time_fits",
    "write_benchmark",
]

#: The lambda grid shared by every rule and RidgeCV.
LAMS = tuple(np.logspace(-4, 4, 41).tolist())
#: Training shares of the data-set cells.
SHARES = (0.01, 0.1, 0.6)
#: Data-driven rules of SelfDistilledRidgeCV compared with RidgeCV.
RULES = ("safe", "loo", "gcv", "holdout")
#: Benchmark data sets (name -> display name).
BENCH_SETS = {
    "air_quality": "Air Quality",
    "airfoil": "Airfoil Self-Noise",
    "appliances_energy": "Appliances Energy",
    "diabetes": "Diabetes (scikit-learn)",
    "friedman1": "Friedman #1 (generated)",
    "theorem1_0.25": "Theorem 1 family, σ² = 0.25",
    "theorem1_1": "Theorem 1 family, σ² = 1",
    "theorem1_4": "Theorem 1 family, σ² = 4",
}
#: Real data sets that also get cells at n_train = ratio * d for these ratios.
NEAR_D_SETS = ("air_quality", "airfoil", "appliances_energy", "diabetes")
NEAR_D_RATIOS = (1.0, 2.0)
#: Pool size of the Theorem 1 family (1% = n 64).
THEOREM1_POOL = 6400

#: Regime grid: features, training rows per feature, effective ranks and noise
#: levels (noise sd / sd of the noiseless target).
REGIME_D = 80
REGIME_RATIOS = (0.25, 0.5, 0.8, 1.0, 1.25, 2.0, 4.0, 16.0)
REGIME_RANKS = {"full": None, "low": REGIME_D // 8}
REGIME_NOISES = {"none": 0.0, "low": 0.25, "high": 2.0}
#: Cross-validation folds of the regime cells (n_train = (FOLDS - 1) / FOLDS of the rows).
FOLDS = 5

#: Benchmark sizes: splits per regime cell (5-fold x repeats) and per data-set cell.
SIZES = {
    "full": {"regime": 30, "sets": 20},
    "reduced": {"regime": 6, "sets": 5},
    "quick": {"regime": 5, "sets": 2},
}
#: Largest n_train / d of the regime cells in the reduced benchmark.
REDUCED_MAX_RATIO = 4.0
#: Cells of the quick benchmark (``fastsd reproduce --quick``).
QUICK_CELLS = ("regime/low/high/1.25", "regime/full/none/1", "diabetes/0.1", "theorem1_1/0.1")

#: Bounds per cell on the safe rule's change against RidgeCV: mean and 95th percentile.
BOUND_MEAN = 0.005
BOUND_P95 = 0.05
#: Seed of the split of the cells into a calibration and a held-out half.
HALF_SEED = 18


@dataclass(frozen=True)
class Cell:
    """One cell of the benchmark: a data family at one training size.

    Attributes
    ----------
    family : str
        ``"regime"`` or a key of :data:`BENCH_SETS`.
    share : float
        Training share of a data-set cell (NaN otherwise).
    ratio : float
        n_train / d of a regime cell or of a near-d data-set cell (NaN otherwise).
    rank, noise : str
        Regime cells: a key of ``REGIME_RANKS`` and of ``REGIME_NOISES``.
    """

    family: str
    share: float = math.nan
    ratio: float = math.nan
    rank: str = ""
    noise: str = ""

    @property
    def key(self) -> str:
        """Stable identifier, e.g. ``regime/low/high/1.25``, ``airfoil/0.01``, ``airfoil/n=2d``."""
        if self.family == "regime":
            return f"regime/{self.rank}/{self.noise}/{self.ratio:g}"
        if math.isnan(self.share):
            return f"{self.family}/n={self.ratio:g}d"
        return f"{self.family}/{self.share:g}"

    @property
    def stratum(self) -> str:
        """Cells are split into halves within strata: one n_train / d, or one data set."""
        return f"regime/{self.ratio:g}" if self.family == "regime" else self.family

    @property
    def size_label(self) -> str:
        """``n/d = 1.25``, ``1%`` or ``n = 2d``."""
        if self.family == "regime":
            return f"n/d = {self.ratio:g}"
        if math.isnan(self.share):
            return f"n = {self.ratio:g}d" if self.ratio != 1 else "n = d"
        return f"{100 * self.share:g}%"

    @property
    def title(self) -> str:
        """Human-readable name of the cell."""
        if self.family == "regime":
            return f"rank {self.rank}, noise {self.noise}, {self.size_label}"
        return f"{display_name(self.family)}, {self.size_label}"


def _all_cells() -> list[Cell]:
    cells = [
        Cell("regime", ratio=ratio, rank=rank, noise=noise)
        for ratio in REGIME_RATIOS
        for rank in REGIME_RANKS
        for noise in REGIME_NOISES
    ]
    for name in BENCH_SETS:
        cells += [Cell(name, share=share) for share in SHARES]
        if name in NEAR_D_SETS:
            cells += [Cell(name, ratio=ratio) for ratio in NEAR_D_RATIOS]
    return cells


def _halves(cells: Sequence[Cell]) -> dict[str, str]:
    """Seeded permutation within each stratum; alternate positions go to the two halves
    (strata of odd size alternate which half gets the extra cell)."""
    rng = np.random.default_rng(HALF_SEED)
    strata: dict[str, list[Cell]] = {}
    for cell in cells:
        strata.setdefault(cell.stratum, []).append(cell)
    out: dict[str, str] = {}
    parity = 0
    for members in strata.values():
        for pos, idx in enumerate(rng.permutation(len(members))):
            out[members[idx].key] = "calibration" if (pos + parity) % 2 == 0 else "held-out"
        parity ^= len(members) % 2
    return out


_CELLS = _all_cells()
_HALF = _halves(_CELLS)


def cell_half(cell: Cell) -> str:
    """``"calibration"`` or ``"held-out"``: the half of the benchmark the cell belongs to."""
    return _HALF[cell.key]


def benchmark_cells(size: str = "full", *, half: str | None = None) -> list[Cell]:
    """The cells of a benchmark size, optionally of one half only.

    ``"full"``: every cell; ``"reduced"``: regime cells with n_train / d <=
    ``REDUCED_MAX_RATIO`` and every data-set cell; ``"quick"``: ``QUICK_CELLS``.
    Splits per cell: ``SIZES[size]``.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, got {size!r}")
    if half not in (None, "calibration", "held-out"):
        raise ValueError(f"half must be 'calibration', 'held-out' or None, got {half!r}")
    if size == "quick":
        cells = [c for c in _CELLS if c.key in QUICK_CELLS]
    else:
        cells = [
            c
            for c in _CELLS
            if size == "full" or c.family != "regime" or c.ratio <= REDUCED_MAX_RATIO
        ]
    return [c for c in cells if half is None or cell_half(c) == half]


def display_name(name: str) -> str:
    """Human-readable name of a benchmark set or bundled dataset."""
    if name in BENCH_SETS:
        return BENCH_SETS[name]

    return cast(str, dataset_info(name)["title"])


def _theorem1_population(
    noise_var: float,
    d: int = 8,
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """(Sigma^{1/2} rows factor C with Sigma = C C^T, theta*, sigma^2)."""
    batch = theorem1_family([d], n=64, d=d, noise_var=noise_var)
    n = batch.X.shape[-2]
    cov_root = batch.eigvecs[0] * (batch.singular_values[0] / np.sqrt(n))
    return cov_root, batch.theta_star[0], float(noise_var)


def _real_data(name: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        return cast(
            "tuple[NDArray[np.float64], NDArray[np.float64]]", load_diabetes(return_X_y=True)
        )
    if name == "friedman1":
        from sklearn.datasets import make_friedman1

        return cast(
            "tuple[NDArray[np.float64], NDArray[np.float64]]",
            make_friedman1(n_samples=2000, noise=1.0, random_state=0),
        )

    X, y, _ = load_dataset(name)
    return X, y


def _oracle_coef(
    X: NDArray[np.float64],
    y: NDArray[np.float64],
    Sigma: NDArray[np.float64],
    theta: NDArray[np.float64],
    noise_var: float,
) -> NDArray[np.float64]:
    """Population-risk-optimal filter on the (centered) training eigenbasis.

    theta_hat = V diag(c) z, z = V^T X_c^T y_c; E z = s^2 t, Cov z = sigma^2 diag(s^2),
    t = V^T theta*. Expected risk ||S^{1/2}((c s^2 - 1) t)||^2 + sigma^2 sum c^2 s^2 S_jj,
    S = V^T Sigma V: a least-squares problem in c (d unknowns, well conditioned).
    """
    Xc = X - X.mean(axis=0)
    yc = y - y.mean()
    s2, V = np.linalg.eigh(Xc.T @ Xc)
    z = V.T @ (Xc.T @ yc)
    S = V.T @ Sigma @ V
    t = V.T @ theta
    A = np.linalg.cholesky(S).T  # S = A^T A
    design = np.vstack([A * (s2 * t)[None, :], np.diag(np.sqrt(noise_var * s2 * np.diag(S)))])
    target = np.concatenate([A @ t, np.zeros(s2.size)])
    c: NDArray[np.float64] = np.linalg.lstsq(design, target, rcond=None)[0]
    return cast("NDArray[np.float64]", V @ (c * z))


def _cell_seed(cell: Cell) -> int:
    return zlib.crc32(cell.key.encode())


def _regime_data(cell: Cell) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """make_regression with the cell's rank, n_train * FOLDS / (FOLDS - 1) rows and
    Gaussian noise of sd REGIME_NOISES[noise] * sd(noiseless target)."""
    from sklearn.datasets import make_regression

    n_train = int(round(cell.ratio * REGIME_D))
    n = -(-n_train * FOLDS // (FOLDS - 1))
    seed = _cell_seed(cell)
    X, y = make_regression(
        n, REGIME_D, effective_rank=REGIME_RANKS[cell.rank], noise=0.0, random_state=seed
    )
    sd = REGIME_NOISES[cell.noise] * float(np.std(y))
    return X, y + sd * np.random.default_rng(seed).standard_normal(n)


#: evaluate(coef, intercept) -> test error of a split (see :func:`cell_splits`).
_Evaluate = Callable[[NDArray[np.floating[Any]], float], float]
#: (split index, X_train, y_train, evaluate, oracle coef or None).
_Split = tuple[int, NDArray[np.float64], NDArray[np.float64], _Evaluate, NDArray[np.float64] | None]


def _test_mse(X_test: NDArray[np.float64], y_test: NDArray[np.float64]) -> _Evaluate:
    def evaluate(coef: NDArray[np.floating[Any]], intercept: float) -> float:
        err = y_test - (X_test @ coef + intercept)
        return float(np.mean(err * err))

    return evaluate


def cell_splits(cell: Cell, n_splits: int) -> Iterator[_Split]:
    """The first ``n_splits`` paired splits of a cell (the same rows for every rule).

    Regime cells: the folds of ``RepeatedKFold(FOLDS)`` over the cell's data
    set; data-set cells: random training rows (all others test); Theorem 1
    cells: fresh draws from the population, evaluated exactly (oracle given).
    """

    if cell.family == "regime":
        from sklearn.model_selection import RepeatedKFold

        X_all, y_all = _regime_data(cell)
        folds = RepeatedKFold(
            n_splits=FOLDS, n_repeats=-(-n_splits // FOLDS), random_state=_cell_seed(cell) % 2**31
        )
        for index, (train, test) in enumerate(folds.split(X_all)):
            if index == n_splits:
                return
            (tr, te), _ = standardize((X_all[train], y_all[train]), (X_all[test], y_all[test]))
            yield index, tr[0], tr[1], _test_mse(*te), None
        return
    if cell.family.startswith("theorem1_"):
        cov_root, theta, noise_var = _theorem1_population(float(cell.family.split("_", 1)[1]))
        Sigma = cov_root @ cov_root.T
        n = max(int(round(cell.share * THEOREM1_POOL)), 2)
        for seed in range(n_splits):
            rng = np.random.default_rng([12, seed, n])
            X = rng.standard_normal((n, theta.size)) @ cov_root.T
            y = X @ theta + np.sqrt(noise_var) * rng.standard_normal(n)

            def excess(
                coef: NDArray[np.floating[Any]],
                intercept: float,
                Sigma: NDArray[np.float64] = Sigma,
                theta: NDArray[np.float64] = theta,
            ) -> float:
                delta = coef - theta
                return float(delta @ Sigma @ delta)

            yield seed, X, y, excess, _oracle_coef(X, y, Sigma, theta, noise_var)
        return
    X_all, y_all = _real_data(cell.family)
    N, d = X_all.shape
    size = cell.ratio * d if math.isnan(cell.share) else cell.share * N
    n = min(max(int(round(size)), 3), N - 1)
    for seed in range(n_splits):
        perm = np.random.default_rng([12, seed]).permutation(N)
        train, test = perm[:n], perm[n:]
        (tr, te), _ = standardize((X_all[train], y_all[train]), (X_all[test], y_all[test]))
        yield seed, tr[0], tr[1], _test_mse(*te), None


def _fit_rule(
    rule: str, X: NDArray[np.float64], y: NDArray[np.float64], seed: int, max_steps: int
) -> tuple[NDArray[np.floating[Any]], float, int, float, bool]:
    """(coef, intercept, k, lam, guard_fired) of one rule on (X, y); NaN coef on failure."""
    from sklearn.linear_model import RidgeCV

    from ..estimators import SelfDistilledRidgeCV, TuningWarning

    if rule == "ridgecv":
        est = RidgeCV(alphas=LAMS).fit(X, y)
        return est.coef_, est.intercept_, 0, float(est.alpha_), False
    K = min(max_steps, 1) if rule == "gcv" else max_steps
    est = SelfDistilledRidgeCV(lams=LAMS, max_steps=K, tuning=rule, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit(X, y)
        except ValueError:
            return np.full(X.shape[1], np.nan), np.nan, -1, np.nan, False
    fired = any(issubclass(w.category, TuningWarning) for w in caught)
    return est.coef_, est.intercept_, est.k_, est.lam_, fired


_ROW_COLUMNS = (
    "cell",
    "family",
    "half",
    "share",
    "ratio",
    "rank",
    "noise",
    "n_train",
    "d",
    "split",
    "rule",
    "error",
    "change",
    "k",
    "lam",
    "guard",
    "fit_seconds",
)


def run_benchmark(
    cells: Iterable[Cell],
    splits: Mapping[str, int] = SIZES["full"],
    *,
    rules: Sequence[str] = RULES,
    max_steps: int = 2,
    progress: Callable[[], object] | None = None,
) -> dict[str, NDArray[Any]]:
    """Every rule against RidgeCV on every split of every cell.

    Parameters
    ----------
    cells : iterable of Cell
        E.g. :func:`benchmark_cells`.
    splits : dict, default=SIZES["full"]
        Splits per cell: ``{"regime": ..., "sets": ...}``.
    rules : sequence of str
        Among ``"safe", "loo", "gcv", "holdout"``; RidgeCV (and the oracle on
        the Theorem 1 family) always run.
    max_steps : int, default=2
        K of the SelfDistilledRidgeCV rules (``gcv``: min(K, 1)).
    progress : callable, optional
        Called with no argument after each cell.

    Returns
    -------
    rows : dict of 1-D arrays
        One row per (cell, split, rule): the cell's ``cell`` (key), ``family,
        half, share, ratio, rank, noise``, then ``n_train, d, split, rule,
        error, change`` (error / RidgeCV's error - 1), ``k, lam`` (the rule's
        choice; k = -1 when it failed), ``guard`` (the GCV guard fired),
        ``fit_seconds``.
    """
    rows: dict[str, list[Any]] = {c: [] for c in _ROW_COLUMNS}
    for cell in cells:
        if cell.key not in _HALF:
            raise ValueError(f"cells must come from benchmark_cells(), got {cell!r}")
        count = splits["regime" if cell.family == "regime" else "sets"]
        for index, X, y, evaluate, oracle in cell_splits(cell, count):
            results: list[tuple[str, float, int, float, bool, float]] = []
            for rule in ("ridgecv",) + tuple(rules):
                start = time.perf_counter()
                coef, intercept, k, lam, fired = _fit_rule(rule, X, y, index, max_steps)
                elapsed = time.perf_counter() - start
                results.append((rule, evaluate(coef, intercept), k, lam, fired, elapsed))
            if oracle is not None:
                results.append(("oracle", evaluate(oracle, 0.0), X.shape[1], np.nan, False, 0.0))
            base = results[0][1]
            for rule, err, k, lam, fired, secs in results:
                values = (
                    cell.key,
                    cell.family,
                    cell_half(cell),
                    cell.share,
                    cell.ratio,
                    cell.rank,
                    cell.noise,
                    X.shape[0],
                    X.shape[1],
                    index,
                    rule,
                    err,
                    err / base - 1.0,
                    k,
                    lam,
                    fired,
                    secs,
                )
                for c, v in zip(_ROW_COLUMNS, values):
                    rows[c].append(v)
        if progress is not None:
            progress()
    return {c: np.asarray(v) for c, v in rows.items()}


_CELL_COLUMNS = ("cell", "family", "half", "share", "ratio", "rank", "noise", "n_train", "d")


def summarize_benchmark(rows: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    """Mean, standard error, 95th percentile and maximum of the paired change per (cell, rule).

    Returns
    -------
    dict of 1-D arrays
        The cell columns of :func:`run_benchmark` (``cell, family, half,
        share, ratio, rank, noise, n_train, d``), then ``rule, n_splits,
        error_mean, change_mean, change_se, change_p95, change_max,
        sd_share`` (fraction of splits where the rule chose k >= 1),
        ``failed`` (splits where it raised), ``guard`` (GCV guard firings).
    """
    keys = _CELL_COLUMNS + (
        "rule",
        "n_splits",
        "error_mean",
        "change_mean",
        "change_se",
        "change_p95",
        "change_max",
        "sd_share",
        "failed",
        "guard",
    )
    out: dict[str, list[Any]] = {k: [] for k in keys}
    for key in dict.fromkeys(rows["cell"].tolist()):
        here = rows["cell"] == key
        first = int(np.flatnonzero(here)[0])
        for rule in dict.fromkeys(rows["rule"][here].tolist()):
            sel = here & (rows["rule"] == rule)
            ch = rows["change"][sel]
            ok = np.isfinite(ch)
            m = int(ok.sum())
            vals = tuple(rows[c][first] for c in _CELL_COLUMNS) + (
                rule,
                m,
                float(np.mean(rows["error"][sel][ok])) if m else np.nan,
                float(np.mean(ch[ok])) if m else np.nan,
                float(np.std(ch[ok], ddof=1) / np.sqrt(m)) if m > 1 else np.nan,
                float(np.percentile(ch[ok], 95)) if m else np.nan,
                float(np.max(ch[ok])) if m else np.nan,
                float(np.mean(rows["k"][sel] > 0)),
                int(np.sum(rows["k"][sel] < 0)),
                int(np.sum(rows["guard"][sel])),
            )
            for k, v in zip(keys, vals):
                out[k].append(v)
    return {k: np.asarray(v) for k, v in out.items()}


def bound_failures(
    summary: Mapping[str, NDArray[Any]], rule: str = "safe", half: str | None = "held-out"
) -> list[tuple[str, float, float]]:
    """Cells where ``rule`` breaks a bound: (cell key, mean change, 95th percentile).

    The bounds are mean <= :data:`BOUND_MEAN` and 95th percentile <=
    :data:`BOUND_P95` of the paired change against RidgeCV; ``half`` None
    checks both halves.
    """
    sel = summary["rule"] == rule
    if half is not None:
        sel &= summary["half"] == half
    bad = sel & ~((summary["change_mean"] <= BOUND_MEAN) & (summary["change_p95"] <= BOUND_P95))
    return [
        (str(summary["cell"][i]), float(summary["change_mean"][i]), float(summary["change_p95"][i]))
        for i in np.flatnonzero(bad)
    ]


def gap_closure(
    summary: Mapping[str, NDArray[Any]],
    rule: str = "safe",
) -> dict[str, tuple[float, float, float, float]]:
    """Share of the RidgeCV -> oracle gap in mean error that ``rule`` closes, per cell.

    Returns
    -------
    dict
        cell key -> (RidgeCV mean error, rule mean error, oracle mean error, closure)
        for the cells with an oracle; closure = (RidgeCV - rule) / (RidgeCV - oracle).
    """
    out: dict[str, tuple[float, float, float, float]] = {}
    for key in dict.fromkeys(summary["cell"].tolist()):
        here = summary["cell"] == key
        err = dict(zip(summary["rule"][here].tolist(), summary["error_mean"][here].tolist()))
        if "oracle" not in err or rule not in err:
            continue
        gap = err["ridgecv"] - err["oracle"]
        out[key] = (
            err["ridgecv"],
            err[rule],
            err["oracle"],
            (err["ridgecv"] - err[rule]) / gap if gap > 0 else np.nan,
        )
    return out


def _pct(value: float, digits: int = 2) -> str:
    return format_value(100 * value, f"{{:+.{digits}f}}") + "%"


def format_benchmark(
    summary: Mapping[str, NDArray[Any]],
    rules: Sequence[str] = ("safe", "loo", "gcv", "holdout", "oracle"),
) -> str:
    """Markdown table of the data-set cells: one row per cell, one column per rule.

    Cell: ``mean ± se (p95)`` of the paired change in % against RidgeCV.
    """
    present = [r for r in rules if r in set(summary["rule"].tolist())]
    head = ["data set", "training size (n)"] + present
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    missing_oracle = False
    for key in dict.fromkeys(summary["cell"][summary["family"] != "regime"].tolist()):
        here = summary["cell"] == key
        i0 = int(np.flatnonzero(here)[0])
        cell = _cell_of(summary, i0)
        cells = [display_name(cell.family), f"{cell.size_label} ({summary['n_train'][i0]})"]
        for rule in present:
            sel = np.flatnonzero(here & (summary["rule"] == rule))
            if sel.size == 0:
                missing_oracle |= rule == "oracle"
                cells.append("n/a")
                continue
            i = int(sel[0])
            if summary["n_splits"][i] < 2:
                cells.append(f"{_pct(summary['change_mean'][i])} (1 split: no error bars)")
                continue
            cells.append(
                f"{_pct(summary['change_mean'][i])} ± {100 * summary['change_se'][i]:.2f} "
                f"({_pct(summary['change_p95'][i], 1)})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    if missing_oracle:
        lines += ["", "n/a: the oracle needs theta*, known only for the synthetic sets."]
    return "\n".join(lines)


def _cell_of(summary: Mapping[str, NDArray[Any]], i: int) -> Cell:
    return Cell(
        str(summary["family"][i]),
        share=float(summary["share"][i]),
        ratio=float(summary["ratio"][i]),
        rank=str(summary["rank"][i]),
        noise=str(summary["noise"][i]),
    )


def format_regime(summary: Mapping[str, NDArray[Any]], rule: str = "safe") -> str:
    """Markdown: ``rule`` against RidgeCV per cell, the two halves separately.

    For each half: the regime cells as a table (rows rank and noise, columns
    n_train / d; entry ``mean / 95th percentile`` of the paired change), the
    data-set cells as a list table, and the worst cell against the bounds.
    """
    sel_rule = summary["rule"] == rule
    out: list[str] = []
    for half in ("calibration", "held-out"):
        sel = sel_rule & (summary["half"] == half)
        if not np.any(sel):
            continue
        out += [f"**{half.capitalize()} half** ({int(sel.sum())} cells)", ""]
        regime = sel & (summary["family"] == "regime")
        if np.any(regime):
            ratios = sorted(set(summary["ratio"][regime].tolist()))
            out.append("| rank, noise | " + " | ".join(f"n/d = {r:g}" for r in ratios) + " |")
            out.append("|---|" + "---|" * len(ratios))
            missing = False
            for rank in REGIME_RANKS:
                for noise in REGIME_NOISES:
                    entries = []
                    for r in ratios:
                        hit = np.flatnonzero(
                            regime
                            & (summary["rank"] == rank)
                            & (summary["noise"] == noise)
                            & (summary["ratio"] == r)
                        )
                        entries.append(
                            "–"
                            if hit.size == 0
                            else f"{_pct(summary['change_mean'][hit[0]])} / "
                            f"{_pct(summary['change_p95'][hit[0]], 1)}"
                        )
                    if any(e != "–" for e in entries):  # rows this half has
                        missing |= "–" in entries
                        out.append(f"| {rank}, {noise} | " + " | ".join(entries) + " |")
            out.append("")
            if missing:
                out += ["–: a cell this half does not have (each cell is in one half).", ""]
        sets = np.flatnonzero(sel & (summary["family"] != "regime"))
        if sets.size:
            out += [
                "| data set | size (n) | mean | 95th pct. | SD chosen |",
                "|---|---|---|---|---|",
            ]
            for i in sets:
                cell = _cell_of(summary, int(i))
                out.append(
                    f"| {display_name(cell.family)} | {cell.size_label} ({summary['n_train'][i]}) "
                    f"| {_pct(summary['change_mean'][i])} | {_pct(summary['change_p95'][i], 1)} "
                    f"| {100 * summary['sd_share'][i]:.0f}% |"
                )
            out.append("")
        means, p95s = summary["change_mean"][sel], summary["change_p95"][sel]
        worst_mean, worst_p95 = int(np.nanargmax(means)), int(np.nanargmax(p95s))
        failures = bound_failures(summary, rule, half)
        out.append(
            f"Worst mean {_pct(means[worst_mean])} "
            f"({_cell_of(summary, int(np.flatnonzero(sel)[worst_mean])).title}), worst 95th "
            f"percentile {_pct(p95s[worst_p95], 1)} "
            f"({_cell_of(summary, int(np.flatnonzero(sel)[worst_p95])).title}); "
            + (
                "every cell within the bounds"
                if not failures
                else f"{len(failures)} cell(s) over the bounds: "
                + ", ".join(f"{k} ({_pct(m)} / {_pct(p, 1)})" for k, m, p in failures)
            )
            + f" (mean ≤ {_pct(BOUND_MEAN, 1)}, 95th percentile ≤ {_pct(BOUND_P95, 0)})."
        )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def time_fits(
    n: int = 2000,
    d: int = 50,
    repeats: int = 15,
    max_steps: int = 2,
    seed: int = 0,
    blas_threads: int | None = 1,
    noise: float = 1.0,
) -> dict[str, Any]:
    """Median fit time of SelfDistilledRidgeCV(tuning="safe") and RidgeCV, side by side.

    Both on the same data (Gaussian X, y = X beta + noise * N(0, 1)) and the
    41-value grid, alternating, in one process (first call excluded), with
    ``blas_threads`` BLAS threads (threadpoolctl; None: leave the pool
    alone). With ``noise=0`` SD passes the safe rule's screen and its exact
    nested LOO check runs. Returns ``{"safe": (median, min, max),
    "ridgecv": (...), "loo": (...), "ratio": median safe / median RidgeCV,
    "selection": the safe rule's selection_}`` (times in seconds).
    """
    from sklearn.linear_model import RidgeCV

    from ..estimators import SelfDistilledRidgeCV

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + noise * rng.standard_normal(n)
    makers: dict[str, Callable[[], Any]] = {
        "safe": lambda: SelfDistilledRidgeCV(lams=LAMS, max_steps=max_steps),
        "loo": lambda: SelfDistilledRidgeCV(lams=LAMS, max_steps=max_steps, tuning="loo"),
        "ridgecv": lambda: RidgeCV(alphas=LAMS),
    }
    times: dict[str, list[float]] = {k: [] for k in makers}
    with contextlib.ExitStack() as stack:
        if blas_threads is not None:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(blas_threads, user_api="blas"))
        for make in makers.values():
            make().fit(X, y)  # warm-up
        for _ in range(repeats):
            for k, make in makers.items():
                start = time.perf_counter()
                make().fit(X, y)
                times[k].append(time.perf_counter() - start)
    out: dict[str, Any] = {
        k: (float(np.median(v)), float(np.min(v)), float(np.max(v))) for k, v in times.items()
    }
    out["ratio"] = out["safe"][0] / out["ridgecv"][0]
    out["selection"] = makers["safe"]().fit(X, y).selection_
    return out


def write_benchmark(
    out: str,
    *,
    size: str = "reduced",
    rules: Sequence[str] = RULES,
    progress: Callable[[], object] | None = None,
    blas_threads: int | None = 1,
) -> str:
    """Run the benchmark and write its files into ``out``; return the Markdown text.

    Files: ``tuning_runs.csv`` (one row per cell, split and rule),
    ``tuning_summary.csv`` (per cell and rule), ``regime_map.png``
    (:func:`fastsd.plotting.plot_regime_map`), ``tuning_change.png``
    (:func:`fastsd.plotting.plot_tuning_benchmark`) and ``tuning.md`` (the
    tables of :func:`format_regime` and :func:`format_benchmark`).

    Parameters
    ----------
    out : str
        Directory (created).
    size : {"reduced", "full", "quick"}, default="reduced"
        Cells (:func:`benchmark_cells`) and splits per cell (:data:`SIZES`).
    rules : sequence of str, default=RULES
    progress : callable, optional
        Called after each cell.
    blas_threads : int or None, default=1
        BLAS threads during the fits (threadpoolctl; the fits are small, and
        more threads only contend on a loaded machine; None: leave the pool
        alone). The results do not depend on it beyond rounding.
    """

    os.makedirs(out, exist_ok=True)
    from threadpoolctl import threadpool_limits

    cells = benchmark_cells(size)
    splits = SIZES[size]
    with contextlib.ExitStack() as stack:
        if blas_threads is not None:
            stack.enter_context(threadpool_limits(blas_threads, user_api="blas"))
        rows = run_benchmark(cells, splits, rules=rules, progress=progress)
    summary = summarize_benchmark(rows)
    write_csv(os.path.join(out, "tuning_runs.csv"), rows)
    write_csv(os.path.join(out, "tuning_summary.csv"), summary)
    plot_regime_map(
        summary,
        os.path.join(out, "regime_map.png"),
        rows=[(r, v) for r in REGIME_RANKS for v in REGIME_NOISES],
    )
    plot_tuning_benchmark(summary, os.path.join(out, "tuning_change.png"), names=dict(BENCH_SETS))
    lines = [
        f"Safe rule (the default) against RidgeCV, {size} benchmark "
        f"({splits['regime']} splits per regime cell, {splits['sets']} per data-set cell); "
        "entries: mean / 95th percentile of the paired change in test error.",
        "",
        format_regime(summary),
        "All rules on the data-set cells (mean ± s.e. (95th percentile)):",
        "",
        format_benchmark(summary),
    ]
    closure = gap_closure(summary)
    if closure:
        lines += [
            "",
            "Theorem 1 family, population excess risk (mean over splits): "
            "RidgeCV → safe rule → oracle-ξ SD, share of the gap closed:",
            "",
        ]
        for key, (r0, r1, r2, c) in closure.items():
            cell = next(c for c in _CELLS if c.key == key)
            lines.append(
                f"- {cell.title}: {r0:.4g} → {r1:.4g} → {r2:.4g} ({round(100 * c)}% closed)"
            )
    text = "\n".join(lines)
    with open(os.path.join(out, "tuning.md"), "w") as f:
        f.write(text + "\n")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastsd.experiments.tuning", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", default="fastsd-tuning")
    parser.add_argument(
        "--full",
        action="store_true",
        help="every cell at full size (default: the reduced benchmark, about a minute)",
    )
    parser.add_argument(
        "--rules", default=",".join(RULES), help="comma-separated rules (default: all)"
    )
    parser.add_argument(
        "--time", action="store_true", help="also time safe vs RidgeCV at n = 2000, d = 50"
    )
    args = parser.parse_args(argv)
    size = "full" if args.full else "reduced"
    print(write_benchmark(args.out, size=size, rules=tuple(args.rules.split(","))))
    if args.time:
        print(time_fits())
    return 0


def gcv_evidence(
    cells: Iterable[Cell] | None = None,
    n_splits: int = 20,
    steps: Sequence[int] = (2, 5),
) -> list[tuple[str, int, bool, float, float]]:
    """Why GCV is refused for k >= 2: its mean / 95th-percentile change vs RidgeCV.

    Fits ``SelfDistilledRidgeCV(tuning="gcv")`` with ``max_steps`` in ``steps``
    by lifting the refusal for the duration of the call, with and without the
    k = 1 guard (:func:`fastsd.estimators._cv.gcv_guard`) applied to the chosen
    entry, on the data-set cells at the shares of :data:`SHARES` by default.
    Returns rows ``(cell key, K, guarded, mean change, p95 change)``.
    """
    from unittest import mock

    from sklearn.linear_model import RidgeCV

    from ..estimators import SelfDistilledRidgeCV, _cv

    if cells is None:
        cells = [c for c in _CELLS if not math.isnan(c.share)]
    out: list[tuple[str, int, bool, float, float]] = []
    for cell in cells:
        changes: dict[tuple[int, bool], list[float]] = {}
        for _index, X, y, evaluate, _ in cell_splits(cell, n_splits):
            ref = RidgeCV(alphas=LAMS).fit(X, y)
            base = evaluate(ref.coef_, ref.intercept_)
            for K in steps:
                for guarded in (True, False):
                    with contextlib.ExitStack() as stack:
                        stack.enter_context(mock.patch.object(_cv, "GCV_MAX_STEPS", K))
                        if not guarded:
                            stack.enter_context(
                                mock.patch.object(_cv, "gcv_guard", lambda *args: None)
                            )
                        stack.enter_context(warnings.catch_warnings())
                        warnings.simplefilter("ignore")
                        est = SelfDistilledRidgeCV(lams=LAMS, max_steps=K, tuning="gcv").fit(X, y)
                    changes.setdefault((K, guarded), []).append(
                        evaluate(est.coef_, est.intercept_) / base - 1.0
                    )
        for (K, guarded), v in changes.items():
            out.append((cell.key, K, guarded, float(np.mean(v)), float(np.percentile(v, 95))))
    return out


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
