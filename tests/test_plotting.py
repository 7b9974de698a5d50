"""The standard figures of a sweep (`fastsd plot`): every line labelled, steps on
integer ticks, math in the labels through mathtext."""

from __future__ import annotations

import numpy as np
import pytest

import fastsd
from fastsd import plotting
from fastsd.cli import main

pytest.importorskip("zarr")
pytest.importorskip("matplotlib")

CONFIG = """
[problems]
source = "synthetic"
family = "theorem1_family"
params = {{ ranks = [2, 3, 4, 5], seed = 0 }}

[grid]
lams = {{ start = 1e-3, stop = 1e3, num = 5 }}
max_steps = 4
{xis}

[run]
selection = "{selection}"
output = "{output}"
"""


@pytest.fixture(params=["oracle", "fixed"])
def figures(request, tmp_path, monkeypatch):
    """The figures plot_sweep draws for a small stored sweep, kept open."""
    selection = request.param
    xis = "xis = [0.0, 0.5, 1.5]" if selection == "fixed" else ""
    out = tmp_path / "out"
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG.format(xis=xis, selection=selection, output=out))
    assert main(["sweep", str(config), "--no-progress"]) == 0
    kept = {}

    def keep(fig, path, dpi=130):
        kept[path.rsplit("/", 1)[-1]] = fig
        return path

    monkeypatch.setattr(plotting, "_save", keep)
    ds = fastsd.load_sweep(out).to_xarray()
    plotting.plot_sweep(ds, str(tmp_path / "figures"))
    yield selection, kept
    for fig in kept.values():
        plotting.pyplot().close(fig)


def test_every_line_is_labelled(figures):
    _, figs = figures
    for name, fig in figs.items():
        for ax in fig.axes:
            lines = ax.get_lines()
            if not lines:
                continue
            legend = ax.get_legend()
            assert legend is not None, name
            shown = {t.get_text() for t in legend.get_texts()}
            labelled = [line.get_label() for line in lines if not line.get_label().startswith("_")]
            assert labelled and set(labelled) <= shown, (name, labelled, shown)
            unlabelled = [line for line in lines if line.get_label().startswith("_")]
            # the per-problem lines share one legend entry: same style as a labelled one
            labelled_styles = {
                (line.get_color(), line.get_linewidth())
                for line in lines
                if not line.get_label().startswith("_")
            }
            for line in unlabelled:
                assert (line.get_color(), line.get_linewidth()) in labelled_styles, name


def test_step_axes_have_integer_ticks(figures):
    selection, figs = figures
    best = figs["best_vs_k.png"].axes[0]
    assert np.all(np.asarray(best.get_xticks()) == np.round(best.get_xticks()))
    if selection == "oracle":
        heat = figs["xi_heatmap.png"].axes[0]
        ticks = np.asarray(heat.get_yticks())
        assert ticks.size and np.all(ticks == np.round(ticks)), ticks
        assert "$\\xi_i$" in heat.get_title()


def test_math_is_typeset(figures):
    _, figs = figures
    for name, fig in figs.items():
        for ax in fig.axes[:1]:
            texts = [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
            for text in texts:
                words = text.replace("$\\lambda$", "").replace("$\\xi", "")
                assert "lambda" not in words and " xi" not in words, (name, text)
