"""Matplotlib figures for the reproduction studies (PNG, Agg backend).

matplotlib is an optional dependency (``pip install fastsd[cli]``); it is
imported only when a plotting function is called. Every function takes a tidy
table (dict of 1-D arrays) as produced by :mod:`fastsd.experiments.synthetic`,
writes one PNG and returns its path.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._fit import linear_fit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: A path to write, returned as given.
_PathT = TypeVar("_PathT", bound="str | os.PathLike[str]")

__all__ = [
    "pyplot",
    "integer_ticks",
    "plot_gain_vs_rank",
    "plot_risk_curves",
    "plot_xi_vs_gap",
    "plot_tuning_benchmark",
    "plot_regime_map",
    "plot_learning_curves",
    "plot_sweep",
]

_STEP_COLORS = (
    "black",
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("fastsd.plotting needs matplotlib: pip install matplotlib") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def integer_ticks(axis: Any) -> None:
    """Put the ticks of ``axis`` (``ax.xaxis`` or ``ax.yaxis``) on integers only: for
    axes that count steps, rounds or ranks."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, path: _PathT, dpi: float = 130) -> _PathT:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def _title(title: str, note: str | None) -> str:
    return title if not note else f"{title}\n{note}"


def _step_label(k: int) -> str:
    return "ridge (k = 0)" if k == 0 else f"{k}-step SD"


def plot_gain_vs_rank(
    table: Mapping[str, NDArray[Any]],
    path: _PathT,
    *,
    fits: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
    note: str | None = None,
) -> _PathT:
    """Gain of optimal r-step SD over optimal ridge and 1-step SD vs r, with linear fits.

    Parameters
    ----------
    table : dict
        From :func:`fastsd.experiments.synthetic.gain_vs_rank` (columns ``rank``,
        ``gain_ridge``, ``gain_1step``).
    path : str
        PNG to write.
    fits : dict, optional
        ``{"ridge": fit, "1step": fit}`` with fit = ``{"slope", "intercept", "r2"}``
        (computed here when omitted).
    title : str, optional
    note : str, optional
        A second title line (e.g. the problem parameters).

    Returns
    -------
    str
        ``path``.
    """
    plt = pyplot()
    r = np.asarray(table["rank"], dtype=float)
    fits = fits or {}
    fig, ax = plt.subplots(figsize=(5.8, 4.2))
    grid = np.linspace(r.min(), r.max(), 100)
    series = (
        ("ridge", "gain_ridge", "tab:blue", "o", "optimal ridge"),
        ("1step", "gain_1step", "tab:orange", "s", "optimal 1-step SD"),
    )
    for key, col, color, marker, name in series:
        y = np.asarray(table[col], dtype=float)
        fit = fits.get(key) or linear_fit(r, y)
        ax.plot(r, y, marker, color=color, ms=5, label=f"{name} / optimal $r$-step SD")
        ax.plot(
            grid,
            fit["slope"] * grid + fit["intercept"],
            "--",
            color=color,
            lw=1.2,
            label=f"fit: {fit['slope']:.3g} $r$ {fit['intercept']:+.3g} ($R^2$ = {fit['r2']:.4f})",
        )
    ax.plot(grid, grid, ":", color="grey", lw=1, label="gain = $r$")
    ax.set_xlabel("rank $r$ of $X$ (number of distinct nonzero singular values)")
    ax.set_ylabel("excess-risk ratio (baseline / $r$-step SD)")
    integer_ticks(ax.xaxis)
    ax.set_title(
        _title(
            title or "Theorem 1 family: gain of optimal $r$-step SD grows linearly in $r$", note
        ),
        fontsize=10,
    )
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_risk_curves(
    curves: Mapping[str, NDArray[Any]],
    path: _PathT,
    *,
    title: str | None = None,
    note: str | None = None,
) -> _PathT:
    """Excess risk vs lambda (log-log) of ridge and k-step SD, one panel per case.

    Parameters
    ----------
    curves : dict
        From :func:`fastsd.experiments.synthetic.assumption_violations` (columns
        ``case``, ``lam``, ``k``, ``risk``).
    path : str
    title : str, optional
    note : str, optional
        A second title line (e.g. the problem parameters).

    Returns
    -------
    str
    """
    plt = pyplot()
    cases = list(dict.fromkeys(np.asarray(curves["case"]).tolist()))
    ks = np.unique(curves["k"])
    fig, axes = plt.subplots(
        1, len(cases), figsize=(4.4 * len(cases), 3.9), squeeze=False, sharey=True
    )
    band = [np.inf, 0.0]
    for ax, case in zip(axes[0], cases):
        here = np.asarray(curves["case"]) == case
        best = {}
        for k in ks.tolist():
            sel = here & (curves["k"] == k)
            lam, risk = curves["lam"][sel], curves["risk"][sel]
            style = dict(
                color=_STEP_COLORS[k % len(_STEP_COLORS)],
                lw=2.2 if k == 0 else 1.5,
                ls="-" if k == 0 else "--" if k % 2 else "-.",
            )
            ax.loglog(lam, risk, label=_step_label(k), **style)
            if np.any(np.isfinite(risk)):
                i = int(np.nanargmin(risk))
                best[k] = risk[i]
                ax.plot(lam[i], risk[i], "o", color=style["color"], ms=4)
        kmax = max(best) if best else 0
        gain = best.get(0, np.nan) / best.get(kmax, np.nan)
        if best:  # the interesting band: the optima, not ridge's lambda -> inf plateau
            band = [min(band[0], min(best.values())), max(band[1], max(best.values()))]
        ax.set_title(f"{case}\noptimal ridge / optimal {kmax}-step SD = {gain:.3g}", fontsize=9)
        ax.set_xlabel(r"$\lambda$")
        ax.grid(alpha=0.3, which="both", lw=0.4)
    if np.isfinite(band[0]) and band[1] > 0:
        axes[0, 0].set_ylim(0.6 * band[0], 30 * band[1])
    axes[0, 0].set_ylabel(r"excess risk (optimal $\xi$ for each $\lambda$)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        _title(
            title
            or "Necessity of the assumptions: excess risk vs λ (dots: each estimator's optimum)",
            note,
        ),
        fontsize=10,
    )
    return _save(fig, path)


def plot_xi_vs_gap(
    table: Mapping[str, NDArray[Any]],
    path: _PathT,
    *,
    slopes: Mapping[int, float] | None = None,
    title: str | None = None,
    note: str | None = None,
) -> _PathT:
    """``max_i |xi_i|`` of the optimal k-step schedule vs the singular-value gap (log-log).

    Parameters
    ----------
    table : dict
        From :func:`fastsd.experiments.synthetic.xi_vs_gap` (columns ``gap``, ``k``,
        ``xi_max_abs``, ``lam``).
    path : str
    slopes : dict, optional
        k -> fitted log-log slope, shown in the legend.
    title : str, optional
    note : str, optional
        A second title line (e.g. the problem parameters).

    Returns
    -------
    str
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    slopes = slopes or {}
    for k in np.unique(table["k"]).tolist():
        sel = table["k"] == k
        label = f"{k}-step SD"
        if k in slopes and np.isfinite(slopes[k]):
            label += f" (slope {slopes[k]:.2f})"
        ax.loglog(
            table["gap"][sel],
            table["xi_max_abs"][sel],
            "o-",
            ms=3.5,
            color=_STEP_COLORS[k % len(_STEP_COLORS)],
            label=label,
        )
    lam = float(np.asarray(table["lam"])[0])
    ax.set_xlabel(r"relative gap between consecutive singular values, $(s_j - s_{j+1}) / s_1$")
    ax.set_ylabel(r"$\max_i\,|\xi_i|$ of the optimal $k$-step schedule")
    ax.set_title(
        _title(
            title or rf"Optimal $\xi$ magnitude grows as the gap shrinks ($\lambda$ = {lam:.3g})",
            note,
        ),
        fontsize=10,
    )
    ax.grid(alpha=0.3, which="both", lw=0.4)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_uci_test_mse(table: Mapping[str, NDArray[Any]], path: _PathT) -> _PathT:
    """Test MSE relative to ridge (same split) vs the number of steps, per dataset.

    Parameters
    ----------
    table : dict
        From :func:`fastsd.experiments.uci.summarize` (columns ``dataset``, ``k``,
        ``paired_change_mean``, ``paired_change_std``).
    path : str

    Returns
    -------
    str
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    seeds = int(np.max(table["n_seeds"]))
    for name in dict.fromkeys(table["dataset"]):
        here = table["dataset"] == name
        ax.errorbar(
            table["k"][here],
            1 + table["paired_change_mean"][here],
            yerr=table["paired_change_std"][here],
            marker="o",
            capsize=3,
            label=name,
        )
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="ridge")
    ax.set_xlabel("number of self-distillation steps $k$ (0 = ridge)")
    ax.set_ylabel("test MSE / ridge test MSE (same split)")
    integer_ticks(ax.xaxis)
    spread = "1 split: no error bars" if seeds == 1 else f"mean ± std over {seeds} splits"
    ax.set_title(f"UCI: validation-tuned $k$-step SD ({spread})")
    ax.legend()
    return _save(fig, path)


def plot_alignment(
    align: Mapping[str, tuple[NDArray[np.float64], NDArray[np.float64]]], path: _PathT
) -> _PathT:
    """Squared cosine of the ridge solution with each eigenvector, one panel per dataset.

    Parameters
    ----------
    align : dict
        name -> (eigenvalues (p,), cos2 (p,)) from :func:`fastsd.experiments.uci.alignment`.
    path : str

    Returns
    -------
    str
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(align), figsize=(4 * len(align), 3.2), squeeze=False)
    for ax, (name, (eig, cos2)) in zip(axes[0], align.items()):
        ax.bar(np.arange(1, eig.size + 1), cos2, color="tab:blue")
        ax.set_title(name)
        ax.set_xlabel(r"eigenvector $j$ of $X^\top X$ (by decreasing eigenvalue)")
        ax.set_ylabel(r"$\cos^2(v_j, \hat\theta_\mathrm{ridge})$")
        ax.set_xlim(0.4, eig.size + 0.6)
        integer_ticks(ax.xaxis)
    fig.suptitle("Alignment of the ridge solution with the eigenbasis")
    return _save(fig, path)


_RULE_STYLE = {
    "safe": ("tab:green", "o", "safe (default)"),
    "loo": ("tab:red", "s", "loo"),
    "gcv": ("tab:purple", "^", "gcv (k ≤ 1)"),
    "holdout": ("tab:orange", "v", "holdout"),
    "oracle": ("grey", "x", "oracle-ξ SD"),
}


def _share_axis(ax: Axes, shares: ArrayLike) -> None:
    """Log x axis labelled at the training shares (in %)."""
    ticks = sorted(set((100 * np.asarray(shares, dtype=float)).tolist()))
    ax.set_xscale("log")
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks], fontsize=7)
    ax.minorticks_off()


def _figure_legend(fig: Figure, axes: NDArray[Any]) -> None:
    """One legend below the panels with every labelled line of any panel."""
    seen: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(
        list(seen.values()),
        list(seen),
        loc="lower center",
        ncol=min(4, len(seen)),
        fontsize=7,
        frameon=False,
    )
    rows = -(-len(seen) // 4)
    fig.tight_layout(rect=(0, min(0.3, 0.09 * rows / axes.shape[0] + 0.02), 1, 1))


def _save_laid_out(fig: Figure, path: _PathT, dpi: float = 130) -> _PathT:
    """Save without re-running the layout (:func:`_figure_legend` did it)."""
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_tuning_benchmark(
    summary: Mapping[str, NDArray[Any]], path: _PathT, *, names: Mapping[str, str] | None = None
) -> _PathT:
    """Paired test-error change vs RidgeCV by training share, one panel per data set.

    Parameters
    ----------
    summary : dict
        From :func:`fastsd.experiments.tuning.summarize_benchmark` (columns
        ``family``, ``share``, ``rule``, ``change_mean``, ``change_se``); the
        cells with a training share are drawn.
    path : str
    names : dict, optional
        family -> display name (panel titles).

    Returns
    -------
    str
    """
    plt = pyplot()
    names = names or {}
    shared = np.isfinite(np.asarray(summary["share"], dtype=float))
    sets = list(dict.fromkeys(summary["family"][shared].tolist()))
    cols = min(4, max(1, len(sets)))
    rows = max(1, -(-len(sets) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(sets) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, sets):
        here = shared & (summary["family"] == name)
        for rule, (color, marker, label) in _RULE_STYLE.items():
            sel = here & (summary["rule"] == rule)
            if not np.any(sel):
                continue
            order = np.argsort(summary["share"][sel].astype(float))
            ax.errorbar(
                100 * summary["share"][sel][order].astype(float),
                100 * summary["change_mean"][sel][order],
                yerr=100 * np.nan_to_num(summary["change_se"][sel][order]),
                color=color,
                marker=marker,
                ms=4,
                capsize=2,
                lw=1.2,
                label=label,
            )
        ax.axhline(0.0, color="black", lw=0.8)
        _share_axis(ax, summary["share"][here].astype(float))
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_title(names.get(name, name), fontsize=9)
        ax.set_xlabel("training share (%)", fontsize=8)
        ax.set_ylabel("change vs RidgeCV (%)", fontsize=8)
        ax.grid(alpha=0.3, which="both", lw=0.4)
    fig.suptitle(
        "Tuning rules: paired change in test error against RidgeCV "
        "(mean ± s.e.; symlog scale, linear within ±1%)",
        fontsize=10,
    )
    _figure_legend(fig, axes)
    return _save_laid_out(fig, path)


def plot_regime_map(
    summary: Mapping[str, NDArray[Any]],
    path: _PathT,
    *,
    rule: str = "safe",
    rows: Sequence[tuple[str, str]] | None = None,
) -> _PathT:
    """Change vs RidgeCV over n_train / d x (rank, noise): mean and 95th percentile maps.

    Parameters
    ----------
    summary : dict
        From :func:`fastsd.experiments.tuning.summarize_benchmark`; its
        regime cells (``family == "regime"``, columns ``ratio``, ``rank``,
        ``noise``, ``half``, ``rule``, ``change_mean``, ``change_p95``).
    path : str
    rule : str, default="safe"
    rows : sequence of (rank, noise), optional
        Row order (default: as they appear in ``summary``).

    Returns
    -------
    str
    """
    from matplotlib.colors import SymLogNorm

    plt = pyplot()
    sel = (summary["family"] == "regime") & (summary["rule"] == rule)
    ratios = sorted(set(summary["ratio"][sel].astype(float).tolist()))
    present = set(zip(summary["rank"][sel].tolist(), summary["noise"][sel].tolist()))
    order = (
        list(rows)
        if rows is not None
        else list(dict.fromkeys(zip(summary["rank"][sel].tolist(), summary["noise"][sel].tolist())))
    )
    order = [r for r in order if r in present]
    fig, axes = plt.subplots(
        1, 2, figsize=(12.5, 1.6 + 0.5 * max(1, len(order))), squeeze=False, layout="constrained"
    )
    norm = SymLogNorm(linthresh=0.5, vmin=-100.0, vmax=100.0, base=10)
    image = None
    for ax, (column, label) in zip(
        axes[0], (("change_mean", "mean"), ("change_p95", "95th percentile"))
    ):
        grid = np.full((len(order), len(ratios)), np.nan)
        held = np.zeros_like(grid, dtype=bool)
        for i in np.flatnonzero(sel):
            r = order.index((summary["rank"][i], summary["noise"][i]))
            c = ratios.index(float(summary["ratio"][i]))
            grid[r, c] = 100 * summary[column][i]
            held[r, c] = summary["half"][i] == "held-out"
        image = ax.imshow(grid, cmap="RdBu_r", norm=norm, aspect="auto")
        for (r, c), value in np.ndenumerate(grid):
            if np.isfinite(value):
                text = "0" if abs(value) < 0.005 else f"{value:+.3g}"
                color = "white" if abs(value) > 20 else "black"
                ax.text(c, r, text, ha="center", va="center", fontsize=7, color=color)
            if held[r, c]:
                ax.add_patch(
                    plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, lw=1.8, ec="black")
                )
        ax.set_xticks(range(len(ratios)), [f"{v:g}" for v in ratios], fontsize=8)
        ax.set_yticks(range(len(order)), [f"rank {a}, noise {b}" for a, b in order], fontsize=8)
        ax.set_xlabel("n_train / d", fontsize=8)
        ax.set_title(f"{label} change vs RidgeCV (%)", fontsize=9)
    if image is not None:
        bar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.9)
        bar.set_label("% (symlog, linear within ±0.5%)", fontsize=8)
    fig.suptitle(
        f"{rule!r} rule against RidgeCV per regime cell (outlined: held-out half)", fontsize=10
    )
    return _save_laid_out(fig, path)


def plot_learning_curves(
    summary: Mapping[str, NDArray[Any]], path: _PathT, *, names: Mapping[str, str] | None = None
) -> _PathT:
    """Test-MSE change of validation-tuned k-step SD vs training share, per dataset.

    Solid lines: against ridge on train (the paper's comparison); dashed:
    against RidgeCV on train + validation (the fair one); grey: ridge on train
    against RidgeCV on train + validation.

    Parameters
    ----------
    summary : dict
        From :func:`fastsd.experiments.uci.summarize_curves`.
    path : str
    names : dict, optional
        dataset -> display name.

    Returns
    -------
    str
    """
    plt = pyplot()
    names = names or {}
    sets = list(dict.fromkeys(summary["dataset"].tolist()))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.4 * len(sets), 3.6), squeeze=False)
    for ax, name in zip(axes[0], sets):
        here = summary["dataset"] == name
        for model in dict.fromkeys(summary["model"][here].tolist()):
            for base, ls in (("ridge_train", "-"), ("ridgecv_trainval", "--")):
                sel = here & (summary["model"] == model) & (summary["baseline"] == base)
                if not np.any(sel):
                    continue
                if model == "ridge_train":
                    color, label = "grey", "ridge (train) vs RidgeCV (train+val)"
                else:
                    k = int(model[4:])
                    color = _STEP_COLORS[k % len(_STEP_COLORS)]
                    label = f"{k}-step SD vs " + (
                        "ridge (train)" if base == "ridge_train" else "RidgeCV (train+val)"
                    )
                ax.errorbar(
                    100 * summary["share"][sel],
                    100 * summary["change_mean"][sel],
                    yerr=100 * np.nan_to_num(summary["change_se"][sel]),
                    color=color,
                    ls=ls,
                    marker="o",
                    ms=3,
                    capsize=2,
                    lw=1.2,
                    label=label,
                )
        ax.axhline(0.0, color="black", lw=0.8)
        _share_axis(ax, summary["share"][here])
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_title(names.get(name, name), fontsize=10)
        ax.set_xlabel("training share (%)")
        ax.set_ylabel("test-MSE change (%)")
        ax.grid(alpha=0.3, which="both", lw=0.4)
    seeds = int(np.max(summary["n_seeds"]))
    spread = "1 seed: no error bars" if seeds == 1 else f"mean ± s.e. over {seeds} seeds"
    fig.suptitle(
        "Where validation-tuned SD helps: paired change in test MSE "
        f"({spread}; symlog axis, linear within ±1%)",
        fontsize=10,
    )
    _figure_legend(fig, axes)
    return _save_laid_out(fig, path)


#: Medians over problems along lambda (the lambda curves, the heat map) use at most
#: this many problems, evenly spaced: the figures' memory does not grow with the sweep.
MEDIAN_PROBLEMS = 2048
#: Problems drawn as their own line against k (evenly spaced).
LINE_PROBLEMS = 200
#: Bytes of the metric read at once when the Dataset is not chunked.
_READ_BYTES = 16 << 20


def _evenly(B: int, m: int) -> NDArray[np.int64]:
    """At most ``m`` of ``range(B)``, evenly spaced (all of them when B <= m)."""
    if B <= m:
        return np.arange(B)
    return np.unique(np.linspace(0, B - 1, m).round().astype(np.int64))


def _problem_ranges(ds: Any, metric: str) -> list[tuple[int, int]]:
    """Consecutive problem ranges to read one at a time: the store's chunks (Dask's, or
    the Zarr encoding's), else ranges of about ``_READ_BYTES`` of the metric."""
    B = ds.sizes["problem"]
    sizes = ds[metric].variable.chunksizes.get("problem")
    stored = ds[metric].encoding.get("chunks")  # a store's chunks, opened without Dask
    if not sizes and stored:
        sizes = [min(stored[0], B - a) for a in range(0, B, stored[0])]
    if not sizes:
        per_problem = 8 * ds[metric].size // max(B, 1)
        step = max(1, _READ_BYTES // max(per_problem, 1))
        sizes = [min(step, B - a) for a in range(0, B, step)]
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _summaries(ds: Any, metric: str, fixed: bool) -> dict[str, NDArray[Any]]:
    """What the figures need, reduced one problem range at a time.

    Returns ``curve`` (s, L, K + 1): the metric (best schedule) of the sampled
    problems; ``best`` (B, K + 1): its minimum over lambda, every problem;
    ``test`` (B, K + 1): the test MSE at the validation choice (when the sweep
    has it); ``heat``: the K-step metric (s, L, G) of the sampled problems, or
    their K-step optimal xi (s, L, K).
    """
    B = ds.sizes["problem"]
    sample = _evenly(B, MEDIAN_PROBLEMS)
    dims = ("problem", "lam", "schedule", "k") if fixed else ("problem", "lam", "k")
    with_test = "test_mse" in ds and not fixed
    with_xi = not fixed and ds.sizes.get("step", 0) > 0
    parts: dict[str, list[NDArray[Any]]] = {"curve": [], "best": [], "test": [], "heat": []}
    for a, b in _problem_ranges(ds, metric):
        part = ds.isel(problem=slice(a, b))
        value = np.asarray(part[metric].transpose(*dims).values)
        best_sched = np.fmin.reduce(value, axis=2) if fixed else value  # (b, L, K + 1)
        rows = sample[(sample >= a) & (sample < b)] - a
        parts["curve"].append(best_sched[rows])
        parts["best"].append(np.fmin.reduce(best_sched, axis=1))
        if with_test:
            chosen = np.argmin(np.where(np.isnan(value), np.inf, value), axis=1)  # (b, K + 1)
            test = np.asarray(part["test_mse"].transpose(*dims).values)
            parts["test"].append(np.take_along_axis(test, chosen[:, None, :], axis=1)[:, 0])
        if fixed:
            parts["heat"].append(value[rows, :, :, -1])
        elif with_xi:
            xi = part["xi"].isel(problem=rows, k=-1).transpose("problem", "lam", "step")
            parts["heat"].append(np.asarray(xi.values))
    return {name: np.concatenate(arrs) for name, arrs in parts.items() if arrs}


def _median(values: NDArray[Any]) -> tuple[NDArray[Any], bool]:
    """Median over the first axis, NaN skipped (NaN where every value is NaN), and
    whether some value was NaN (the figure's title then says so)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        out: NDArray[Any] = np.nanmedian(values, axis=0)
    return out, bool(np.isnan(values).any())


#: What a title says when a median skipped NaN values.
_SKIPPED = "NaN skipped"


def _notes(*parts: str | None) -> str | None:
    """The second title line: the parts that are not empty, joined by "; "."""
    return "; ".join(p for p in parts if p) or None


def plot_sweep(ds: Any, directory: str, partial: str | None = None) -> list[str]:
    """The standard figures of a labelled sweep (:func:`fastsd.load_sweep`).

    Writes, into ``directory``:

    * ``metric_vs_lam.png`` -- the risk (or validation MSE) against lambda, one
      line per k (median over problems);
    * ``best_vs_k.png`` -- its minimum over lambda (and schedule) against k, per
      problem and the median (with the test MSE at the validation choice, when
      the sweep has one);
    * ``xi_heatmap.png`` -- the optimal xi of the K-step schedule over (lambda,
      step), median over problems; for fixed-xi sweeps the K-step metric over
      (lambda, xi).

    The Dataset is read one problem range (one store chunk) at a time, so a
    lazily opened store of any size is plotted in bounded memory: medians
    along lambda are over at most :data:`MEDIAN_PROBLEMS` problems, evenly
    spaced (the titles say so), and at most :data:`LINE_PROBLEMS` problems
    are drawn as their own line; the median against k is over every problem.
    Medians skip NaN values (unfinished blocks, unrecoverable xi, overflowed
    metrics) only where the figure's title says "NaN skipped".

    Parameters
    ----------
    ds : xarray.Dataset
        The layout of :mod:`fastsd.store` (NumPy- or Dask-backed).
    directory : str
    partial : str, optional
        Said in every title, e.g. "partial: 3 of 8 blocks" for an unfinished sweep.

    Returns
    -------
    list of str
        The paths written.
    """
    from matplotlib.colors import SymLogNorm

    plt = pyplot()
    metric = "risk" if "risk" in ds else "val_mse"
    fixed = "schedule" in ds.dims
    lams = np.asarray(ds["lam"].values)
    ks = np.asarray(ds["k"].values)
    B = ds.sizes["problem"]
    summary = _summaries(ds, metric, fixed)
    sampled = summary["curve"].shape[0]
    note = f"median over {B} problems" if B > 1 else None
    if sampled < B:
        note = f"median over {sampled} of {B} problems, evenly spaced"
    label = {"risk": "excess risk", "val_mse": "validation MSE"}[metric]
    paths: list[str] = []

    fig, ax = plt.subplots(figsize=(6, 4))
    curve, skipped = _median(summary["curve"])  # (L, K + 1)
    for i, k in enumerate(ks):
        ax.plot(
            lams, curve[:, i], color=_STEP_COLORS[i % len(_STEP_COLORS)], label=_step_label(int(k))
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"$\lambda$",
        ylabel=label,
        title=_title(
            f"{label} against $\\lambda$" + (" (best schedule)" if fixed else ""),
            _notes(partial, note, _SKIPPED if skipped else None),
        ),
    )
    ax.legend(fontsize=8)
    paths.append(_save(fig, os.path.join(directory, "metric_vs_lam.png")))

    fig, ax = plt.subplots(figsize=(6, 4))
    best = summary["best"]  # (B, K + 1)
    drawn = _evenly(B, LINE_PROBLEMS)
    for j, b in enumerate(drawn):
        each = "each problem" if len(drawn) == B else f"{len(drawn)} problems, evenly spaced"
        ax.plot(ks, best[b], color="0.8", lw=0.8, label=None if j else each)
    median, skipped = _median(best)
    ax.plot(ks, median, "o-", color="tab:blue", label=f"best {label}")
    if "test" in summary:
        median, skipped_test = _median(summary["test"])
        skipped |= skipped_test
        ax.plot(ks, median, "s--", color="tab:red", label="test MSE at the validation choice")
    lines = "" if B <= LINE_PROBLEMS else f"; {LINE_PROBLEMS} of them drawn"
    ax.set(
        yscale="log",
        xlabel="$k$ (steps)",
        xticks=ks,
        ylabel="MSE" if "test" in summary else label,
        title=_title(
            f"best {label} over $\\lambda$ against $k$",
            _notes(
                partial,
                f"median over {B} problems{lines}" if B > 1 else None,
                _SKIPPED if skipped else None,
            ),
        ),
    )
    ax.legend(fontsize=8)
    paths.append(_save(fig, os.path.join(directory, "best_vs_k.png")))

    fig, ax = plt.subplots(figsize=(6, 4))
    K = int(ks[-1])
    if fixed:
        grid, skipped = _median(summary["heat"])
        grid = grid.T  # (G, L)
        rows, ylabel = ds["xi_schedule"].values[:, -1] if K else ds["schedule"].values, r"$\xi$"
        mesh = ax.pcolormesh(
            lams, np.arange(grid.shape[0]), grid, shading="nearest", norm="log", cmap="viridis"
        )
        ax.set_yticks(np.arange(grid.shape[0]), [f"{r:.3g}" for r in rows])
        title = f"{label} with $k$ = {K} over ($\\lambda$, $\\xi$)"
    elif K:
        grid, skipped = _median(summary["heat"])
        grid = grid.T  # (K, L)
        finite = np.abs(grid[np.isfinite(grid)])
        scale = max(float(finite.max()) if finite.size else 1.0, 1e-12)
        mesh = ax.pcolormesh(
            lams,
            ds["step"].values,
            grid,
            shading="nearest",
            cmap="RdBu_r",
            norm=SymLogNorm(linthresh=min(1.0, scale), vmin=-scale, vmax=scale),
        )
        integer_ticks(ax.yaxis)
        ylabel = "step $i$ of the schedule"
        title = f"optimal $\\xi_i$ of the {K}-step schedule (blank: unrecoverable)"
    else:
        mesh, ylabel, title, skipped = None, "", "no steps (max_steps = 0)", False
    if mesh is not None:
        fig.colorbar(mesh, ax=ax)
    ax.set(
        xscale="log",
        xlabel=r"$\lambda$",
        ylabel=ylabel,
        title=_title(title, _notes(partial, note, _SKIPPED if skipped else None)),
    )
    paths.append(_save(fig, os.path.join(directory, "xi_heatmap.png")))
    return paths
