"""The synthetic studies: Theorem 1's linear gain, the necessity study, xi vs gap, files."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from fastsd.experiments import synthetic
from fastsd.experiments.synthetic import (
    CASES,
    assumption_violations,
    gain_vs_rank,
    linear_fit,
    optimum_over_lambda,
    write_synthetic,
    xi_vs_gap,
)
from fastsd.tables import read_csv

RANKS = list(range(2, 9))


@pytest.fixture(scope="module")
def gain():
    return gain_vs_rank(RANKS, quick=True)


def test_gain_table_columns(gain):
    assert gain["rank"].tolist() == RANKS
    lengths = {len(v) for v in gain.values()}
    assert lengths == {len(RANKS)}
    for col in ("risk_ridge", "risk_1step", "risk_rstep", "gain_ridge", "gain_1step"):
        assert np.all(np.isfinite(gain[col])), col


def test_rstep_below_1step_below_ridge(gain):
    assert np.all(gain["risk_rstep"] <= gain["risk_1step"] * (1 + 1e-12))
    assert np.all(gain["risk_1step"] <= gain["risk_ridge"] * (1 + 1e-12))
    # r distinct nodes: r steps reach the per-direction oracle
    np.testing.assert_allclose(gain["risk_rstep"], gain["risk_oracle"], rtol=1e-8)


def test_gain_linear_in_rank(gain):
    r = gain["rank"]
    for col, min_slope in (("gain_ridge", 0.8), ("gain_1step", 0.4)):
        g = gain[col]
        assert np.all(np.diff(g) > 0), col
        fit = linear_fit(r, g)
        assert fit["slope"] > min_slope, (col, fit)
        assert fit["r2"] > 0.995, (col, fit)
    # gain over ridge ~ r at high signal-to-noise
    np.testing.assert_allclose(gain["gain_ridge"], r, rtol=0.05)


def test_gain_backends_agree():
    a = gain_vs_rank([2, 3, 5], quick=True, backend="numba")
    b = gain_vs_rank([2, 3, 5], quick=True, backend="numpy")
    for col in ("risk_ridge", "risk_1step", "risk_rstep"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9)


def test_align_bottom_one_step_is_ridge():
    g = gain_vs_rank([2, 4], quick=True, align="bottom")
    np.testing.assert_allclose(g["gain_1step"], g["gain_ridge"], rtol=1e-3)
    assert np.all(g["gain_ridge"] > 1.5)


def test_violations_gain_vanishes():
    curves = assumption_violations(quick=True)
    K = 4
    L = np.unique(curves["lam"]).size
    assert len(curves["risk"]) == len(CASES) * L * (K + 1)
    # at every lambda the optimal risk is non-increasing in k
    for case in CASES:
        here = curves["case"] == case
        r = curves["risk"][here].reshape(L, K + 1)
        ok = np.all(np.isfinite(r), axis=1)
        assert np.all(np.diff(r[ok], axis=1) <= 1e-12 * r[ok, :1])
    best = optimum_over_lambda(curves)
    top = best["k"] == K
    gains = dict(zip(best["case"][top].tolist(), best["gain_vs_ridge"][top]))
    assert gains["assumptions hold"] > 3.0
    for case in CASES[1:]:
        assert 1.0 - 1e-9 <= gains[case] < 1.05, (case, gains[case])
    # and each k-step curve at its own optimum is no worse than the (k-1)-step one
    for case in CASES:
        sel = best["case"] == case
        assert np.all(np.diff(best["risk_opt"][sel]) <= 1e-12)


def test_xi_grows_as_gap_shrinks():
    gaps = np.logspace(-3, -1, 7)
    table = xi_vs_gap(gaps, p=3)
    assert len(table["gap"]) == 3 * gaps.size
    for k in (2, 3):
        sel = table["k"] == k
        order = np.argsort(table["gap"][sel])[::-1]  # gap shrinking
        xi = table["xi_max_abs"][sel][order]
        assert np.all(np.isfinite(xi))
        assert np.all(np.diff(xi) > 0), (k, xi)
        assert xi[-1] > 10 * xi[0]
    # one step cannot exploit the gap: its xi stays bounded
    one = table["xi_max_abs"][table["k"] == 1]
    assert np.ptp(one) < 0.1 * np.max(one)
    # schedules: NaN past step k
    assert np.all(np.isnan(table["xi_3"][table["k"] < 3]))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    figures = importlib.util.find_spec("matplotlib") is not None
    summary = write_synthetic(str(out), quick=True, figures=figures)
    return out, summary, figures


def test_write_synthetic_tables(written):
    out, summary, _ = written
    for name in (
        "gain_vs_rank.csv",
        "violations_curves.csv",
        "violations_optimum.csv",
        "xi_vs_gap.csv",
        "synthetic_summary.json",
    ):
        assert os.path.getsize(out / name) > 0, name
    back = read_csv(out / "gain_vs_rank.csv")
    assert back["rank"].tolist() == [str(r) for r in synthetic.QUICK_RANKS]
    assert set(summary) >= {"headline", "tables", "figures", "elapsed_s"}
    assert all(os.path.exists(p) for p in summary["tables"].values())
    assert summary["gain_vs_rank"]["fit_ridge"]["slope"] > 0.8
    assert summary["gain_vs_rank"]["rstep_equals_oracle"]
    assert all(isinstance(v, str) for v in summary["headline"].values())
    with open(out / "synthetic_summary.json") as f:
        assert json.load(f)["headline"] == summary["headline"]


def test_write_synthetic_figures(written):
    pytest.importorskip("matplotlib")
    out, summary, _ = written
    names = sorted(os.path.basename(p) for p in summary["figures"])
    assert names == ["gain_vs_rank.png", "violations.png", "xi_vs_gap.png"]
    for p in summary["figures"]:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_write_synthetic_without_figures(tmp_path):
    summary = write_synthetic(str(tmp_path), quick=True, figures=False)
    assert summary["figures"] == []
    assert not list(tmp_path.glob("*.png"))
