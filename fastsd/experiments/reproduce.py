"""``fastsd reproduce``: every study of the paper in one report directory.

Layout of the report::

    OUT/summary.md              headline numbers, Table-1-style table, figures
    OUT/synthetic/...           Theorem 1 gain vs rank, assumption violations, xi vs gap
    OUT/kernel/...              kernel SD: Mobahi et al. rounds, Borup & Andersen weighting,
                                teacher x student penalty map
    OUT/uci_runs.csv            one row per (dataset, seed, k): lambda, xi, val/test MSE
    OUT/uci_table.csv           mean +- std over seeds, change vs ridge
    OUT/uci_alignment.csv/.png  the alignment diagnostic
    OUT/uci_test_mse.png        test MSE relative to ridge vs k
    OUT/tuning_rules.md         measured tables: tuning rules vs RidgeCV per cell (both halves)
                                and the learning-curve numbers; the prose is in the user guide
    OUT/tuning_*.csv/.png       the tuning benchmark (fastsd.experiments.tuning)
    OUT/regime_map.png          the safe rule vs RidgeCV over n/d x rank x noise
    OUT/learning_curve*.csv/.png  validation-tuned SD vs both ridge baselines by training share
    OUT/report.json             marks OUT as a fastsd report: version, complete, the entries written

Like ``fastsd sweep``, ``reproduce`` writes only into an empty (or new)
directory or over an earlier fastsd report with ``overwrite``, and then
removes only the entries that report recorded in ``report.json``. With
``overwrite``, a directory that is not a report may take the report beside
its own files, as long as none of them has the name of a report entry:
fastsd never deletes or replaces a file it did not write.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._version import __version__
from ..datasets import load_split
from ..plotting import plot_alignment, plot_learning_curves, plot_uci_test_mse, pyplot
from ..store.manifest import remove_entries, write_json
from ..tables import format_value, to_markdown, write_csv
from .kernel_sd import write_kernel_studies
from .synthetic import write_synthetic
from .tuning import display_name, write_benchmark
from .uci import (
    CURVE_SHARES,
    DEFAULT_DATASETS,
    alignment,
    curve_paragraph,
    learning_curve,
    run_protocol,
    summarize,
    summarize_curves,
)

__all__ = ["REPORT_ENTRIES", "prepare_report", "reproduce"]

#: The marker of a report directory (JSON: fastsd_report, fastsd, complete, entries).
MARKER = "report.json"
#: The entries a report writes into its directory (all that ``overwrite`` may replace).
REPORT_ENTRIES = (
    "summary.md",
    "synthetic",
    "kernel",
    "uci_runs.csv",
    "uci_table.csv",
    "uci_alignment.csv",
    "uci_alignment.png",
    "uci_test_mse.png",
    "tuning_rules.md",
    "tuning_runs.csv",
    "tuning_summary.csv",
    "tuning_change.png",
    "regime_map.png",
    "tuning.md",
    "learning_curve_runs.csv",
    "learning_curves.csv",
    "learning_curves.png",
)


def _read_marker(out: str) -> dict[str, Any] | None:
    """The marker of a fastsd report in ``out``, or None."""
    try:
        with open(os.path.join(out, MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("fastsd_report") != 1:
        return None
    entries = marker.get("entries")
    if not isinstance(entries, list) or not all(
        isinstance(e, str) and e and os.sep not in e and e not in (".", "..") for e in entries
    ):
        return None
    return marker


def prepare_report(out: str, *, overwrite: bool = False) -> list[str]:
    """Check ``out`` before a report is written; returns the entries it already holds.

    Nothing is written here except, with ``overwrite``, the removal of the
    entries an earlier fastsd report recorded in its marker.

    Raises
    ------
    ValueError
        When ``out`` is a file, holds a report and ``overwrite`` is False, is a
        non-empty directory that is not a report and ``overwrite`` is False, or
        holds a file fastsd did not write under the name of a report entry.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--output {out} exists and is not a directory")
    entries = sorted(os.listdir(out)) if os.path.isdir(out) else []
    if not entries:
        return []
    marker = _read_marker(out)
    if marker is not None:
        if not overwrite:
            raise ValueError(
                f"{out} holds a fastsd report; pass --overwrite to replace it, or choose "
                "another --output"
            )
        remove_entries(out, [*marker["entries"], MARKER])
        return sorted(os.listdir(out))
    if not overwrite:
        raise ValueError(
            f"{out} is not empty and is not a fastsd report; choose another --output, "
            "or pass --overwrite to write the report beside its files"
        )
    taken = sorted(set(entries) & {*REPORT_ENTRIES, MARKER})
    if taken:
        raise ValueError(
            f"refusing to replace {', '.join(taken[:5])} in {out}: fastsd did not write "
            "them (no fastsd report.json); move them away or choose another --output"
        )
    return entries


def _steps(progress: bool, total: int) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="fastsd reproduce", unit="step")


#: Where the tuning rules, the benchmark's protocol and its reading are described.
TUNING_DOCS = "the user guide's Tuning page (docs/user_guide/tuning.md)"

#: Size of the tuning benchmark and the learning curves per mode.
_TUNING_PLAN: dict[str, dict[str, Any]] = {
    "quick": dict(size="quick", curve_seeds=1, curve_shares=(0.01, 0.1)),
    "default": dict(size="reduced", curve_seeds=3, curve_shares=None),
    "full": dict(size="full", curve_seeds=10, curve_shares=None),
}


def _tuning_sections(
    out: str, mode: str, datasets: Sequence[str]
) -> tuple[str, str, dict[str, Any]]:
    """Tuning benchmark (all rules vs RidgeCV) and UCI learning curves; Markdown text."""
    plan = _TUNING_PLAN[mode]
    bench = write_benchmark(out, size=plan["size"])
    shares = plan["curve_shares"] or CURVE_SHARES
    parts = [learning_curve(name, shares, range(plan["curve_seeds"])) for name in datasets]
    rows = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    curves = summarize_curves(rows)
    write_csv(os.path.join(out, "learning_curve_runs.csv"), rows)
    write_csv(os.path.join(out, "learning_curves.csv"), curves)
    names = {name: display_name(name) for name in datasets}
    plot_learning_curves(curves, os.path.join(out, "learning_curves.png"), names=names)
    return bench, curve_paragraph(curves, names), plan


def _synthetic(out: str, quick: bool, progress: Any) -> dict[str, Any]:
    return write_synthetic(os.path.join(out, "synthetic"), quick=quick, progress=progress)


def reproduce(
    out: str,
    *,
    quick: bool = False,
    seeds: int | None = None,
    backend: str = "numba",
    progress: bool = True,
    datasets: Sequence[str] = DEFAULT_DATASETS,
    full: bool = False,
    overwrite: bool = False,
) -> str:
    """Run the synthetic studies and the UCI protocol; write the report.

    Parameters
    ----------
    out : str
        Report directory: new, empty, or (with ``overwrite``) see :func:`prepare_report`.
    quick : bool, default=False
        3 seeds and a coarser lambda grid (seconds on 2 cores).
    seeds : int, optional
        Number of random splits per dataset (default 3 quick, 10 full).
    backend : {"numba", "numpy"}
    progress : bool
    datasets : sequence of str
    full : bool, default=False
        The tuning benchmark at its full size (20 paired splits per set and
        share) and 10-seed learning curves (minutes); otherwise 5 splits and
        3 seeds (2 splits on two sets and 1 seed with ``quick``).
    overwrite : bool, default=False
        Replace an earlier report in ``out`` (only the entries it wrote), or
        write beside the files of a directory that is not a report.

    Returns
    -------
    str
        Path of ``summary.md``.
    """
    if seeds is None:
        seeds = 3 if quick else 10
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    if quick and full:
        raise ValueError("quick and full exclude each other; choose one")
    from ..estimators import compare  # noqa: F401  (fail fast: needs scikit-learn)

    pyplot()  # fail fast: needs matplotlib
    before = set(prepare_report(out, overwrite=overwrite))
    os.makedirs(out, exist_ok=True)
    marker = {"fastsd_report": 1, "fastsd": __version__, "complete": False}
    write_json(os.path.join(out, MARKER), dict(marker, entries=list(REPORT_ENTRIES)))
    started = time.perf_counter()
    bar = _steps(progress, 2 + len(datasets))
    synthetic = _synthetic(out, quick, progress=None)

    kernel = write_kernel_studies(os.path.join(out, "kernel"), quick=quick)
    synthetic.setdefault("sections", []).append(
        (
            "Kernel self-distillation (Mobahi et al.; Borup & Andersen; teacher × student λ)",
            kernel["lines"],
            kernel["figures"],
        )
    )
    if bar is not None:
        bar.update(1)

    runs: list[dict[str, NDArray[Any]]] = []
    align: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    for name in datasets:
        runs.append(
            run_protocol(
                name, list(range(seeds)), max_steps=5, num_lams=21 if quick else 41, backend=backend
            )
        )
        align[name] = alignment(name, seed=0)
        if bar is not None:
            bar.update(1)
    rows = {key: np.concatenate([r[key] for r in runs]) for key in runs[0]}
    table = summarize(rows)
    write_csv(os.path.join(out, "uci_runs.csv"), rows)
    write_csv(os.path.join(out, "uci_table.csv"), table)
    write_csv(
        os.path.join(out, "uci_alignment.csv"),
        {
            "dataset": np.concatenate([[n] * e.size for n, (e, _) in align.items()]),
            "eigen_index": np.concatenate([np.arange(e.size) for e, _ in align.values()]),
            "eigenvalue": np.concatenate([e for e, _ in align.values()]),
            "cos2": np.concatenate([c for _, c in align.values()]),
        },
    )
    shown = dict(table, dataset=np.array([display_name(n) for n in table["dataset"]]))
    plot_uci_test_mse(shown, os.path.join(out, "uci_test_mse.png"))
    plot_alignment(
        {display_name(n): v for n, v in align.items()}, os.path.join(out, "uci_alignment.png")
    )
    tuning = _tuning_sections(out, "full" if full else "quick" if quick else "default", datasets)
    with open(os.path.join(out, "tuning_rules.md"), "w") as f:
        f.write(
            f"Measured tables only; the rules, the protocol and their reading: {TUNING_DOCS}."
            f"\n\n{tuning[0]}\n\nLearning curves: {tuning[1]}\n"
        )
    if bar is not None:
        bar.update(1)
        bar.close()
    elapsed = time.perf_counter() - started
    n_train = {name: load_split(name, seed=0).X_train.shape[0] for name in datasets}
    summary = _write_summary(out, table, align, synthetic, seeds, quick, elapsed, n_train, tuning)
    written = sorted(set(os.listdir(out)) - before - {MARKER})
    write_json(os.path.join(out, MARKER), dict(marker, complete=True, entries=written))
    return summary


def _table1(table: Mapping[str, NDArray[Any]]) -> str:
    """Table-1 layout: one row per dataset, ridge / 1-step / 2-step (+ best k <= 5)."""
    lines = [
        "| dataset | ridge | 1-step SD | 2-step SD | best k <= 5 | 2-step vs ridge "
        "(paired, mean ± std) |",
        "|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(table["dataset"]):
        here = table["dataset"] == name
        mean, std, k = table["test_mse_mean"][here], table["test_mse_std"][here], table["k"][here]
        cell = [f"{_sig(mean[i], 4)} ± {_sig(std[i], 2)}" for i in range(3)]
        best = int(np.nanargmin(mean))
        change = table["paired_change_mean"][here][2]
        spread = table["paired_change_std"][here][2]
        lines.append(
            f"| {display_name(name)} | {cell[0]} | {cell[1]} | {cell[2]} | "
            f"k = {k[best]}: {_sig(mean[best], 4)} | {format_value(100 * change, '{:+.2f}')}% ± "
            f"{100 * spread:.2f}% |"
        )
    return "\n".join(lines)


def _sig(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits, without an exponent (9350, 300, 0.093)."""
    return f"{float(f'{value:.{digits}g}'):g}" if abs(value) < 1e15 else f"{value:.{digits}g}"


def _write_summary(
    out: str,
    table: Mapping[str, NDArray[Any]],
    align: Mapping[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
    synthetic: dict[str, Any],
    seeds: int,
    quick: bool,
    elapsed: float,
    n_train: Mapping[str, int],
    tuning: tuple[str, str, dict[str, Any]],
) -> str:
    lines = [
        "# fastsd reproduction report",
        "",
        f"Mode: {'quick' if quick else 'full'}; {seeds} random splits per dataset; "
        f"total time {elapsed:.0f} s.",
        "",
        "## Synthetic studies (excess risk, each estimator at its own optimal λ and ξ)",
        "",
    ]
    for key, value in synthetic.get("headline", {}).items():
        lines.append(f"- {key}: {value}")
    for fig in synthetic.get("figures", []):
        rel = os.path.relpath(fig, out)
        lines += ["", f"![{os.path.basename(fig)}]({rel})"]
    for title, texts, figs in synthetic.get("sections", []):
        lines += ["", f"## {title}", ""] + [f"- {t}" for t in texts]
        lines += [f"\n![{os.path.basename(f)}]({os.path.relpath(f, out)})" for f in figs]
    lines += [
        "",
        "## UCI datasets: test MSE (mean ± std over splits), λ and ξ tuned on validation",
        "",
        _table1(table),
        "",
        "Negative change = SD better than ridge. Per-k details:",
        "",
        to_markdown(
            dict(table, dataset=np.array([display_name(n) for n in table["dataset"]])),
            {
                "test_mse_mean": "{:.5g}",
                "test_mse_std": "{:.3g}",
                "change_vs_ridge": "{:+.2%}",
                "paired_change_mean": "{:+.2%}",
                "paired_change_std": "{:.2%}",
            },
        ),
        "",
        "![test MSE vs k](uci_test_mse.png)",
        "",
        "## Alignment diagnostic",
        "",
        "Squared cosine between the validation-tuned ridge solution and each eigenvector "
        "of XᵀX, numbered by decreasing eigenvalue as in the figure: the largest cos² (and "
        "at which eigenvector), and the sum of the three largest:",
        "",
    ]
    for name, (eig, cos2) in align.items():
        top = np.sort(cos2)[::-1]
        lines.append(
            f"- {display_name(name)}: largest {top[0]:.2f} (eigenvector "
            f"{int(np.argmax(cos2)) + 1} of {eig.size}), three largest {top[:3].sum():.2f} "
            f"(d / n_train = {eig.size / n_train[name]:.2%}, the "
            "scale of the estimation error any ridge or SD filter can remove "
            "relative to the noise in the test MSE)"
        )
    bench, curves, plan = tuning
    lines += [
        "",
        "![alignment](uci_alignment.png)",
        "",
        "## Tuning rules against scikit-learn's RidgeCV",
        "",
        f"The {plan['size']} tuning benchmark (`--full`: the full one); protocol, rules "
        f"and reading: {TUNING_DOCS}. Numbers per split in `tuning_runs.csv`.",
        "",
        bench,
        "",
        "![safe rule vs RidgeCV over the regime grid](regime_map.png)",
        "",
        "![tuning rules vs RidgeCV](tuning_change.png)",
        "",
        "## Where SD helps: learning curves on the UCI data",
        "",
        "Validation-tuned SD against ridge on train and RidgeCV on train + validation, "
        + (
            "1 seed: no error bars"
            if plan["curve_seeds"] == 1
            else f"{plan['curve_seeds']} seeds, mean ± s.e."
        )
        + " (`--full`: 10 seeds); protocol: the user guide's Reproduction page "
        "(docs/user_guide/reproduction.md). Numbers in `learning_curves.csv`.",
        "",
        curves,
        "",
        "![learning curves](learning_curves.png)",
        "",
    ]
    path = os.path.join(out, "summary.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path
