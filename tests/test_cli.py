"""The ``fastsd`` command line: sweeps from configs, resume, errors, info."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastsd
from fastsd.cli import main
from fastsd.tables import read_csv


@pytest.fixture()
def npz_problems(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 30, 4))
    theta = rng.normal(size=(5, 4))
    path = tmp_path / "problems.npz"
    np.savez(path, X=X, theta_star=theta, noise_var=np.full(5, 0.5))
    return path, X, theta


def write_config(tmp_path, body):
    path = tmp_path / "sweep.toml"
    path.write_text(body)
    return path


ORACLE = """
[problems]
source = "npz"
path = "problems.npz"

[grid]
lams = {{ start = 0.01, stop = 100.0, num = 4 }}
max_steps = 3

[run]
selection = "{selection}"
backend = "numba"
output = "out"
block = 2
"""


@pytest.mark.parametrize("command", [[], ["reproduce"], ["sweep"], ["export"], ["plot"], ["info"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main(command + ["--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("numba threads", "threading layer", "kernel cache", "numpy"):
        assert key in out


@pytest.mark.filterwarnings(
    "ignore::fastsd.exceptions.IllConditionedXiWarning"
)  # compares risks and xi
def test_sweep_oracle_matches_api(tmp_path, npz_problems, capsys):
    _, X, theta = npz_problems
    cfg = write_config(tmp_path, ORACLE.format(selection="oracle"))
    assert main(["sweep", str(cfg), "--no-progress"]) == 0
    ds = fastsd.load_sweep(tmp_path / "out").to_xarray()
    risk, xi = fastsd.sweep_optimal(X, theta, 0.5, np.logspace(-2, 2, 4), 3)
    np.testing.assert_allclose(ds["risk"].values, risk, rtol=1e-12)
    np.testing.assert_allclose(ds["xi"].values[:, :, 1:], xi, rtol=1e-12)
    np.testing.assert_allclose(ds["lam"].values, np.logspace(-2, 2, 4))


def test_sweep_fixed(tmp_path, npz_problems):
    _, X, theta = npz_problems
    body = ORACLE.format(selection="fixed").replace(
        "max_steps = 3", "max_steps = 2\nxis = [0.0, 0.5, 2.0]"
    )
    cfg = write_config(tmp_path, body)
    assert main(["sweep", str(cfg), "--no-progress"]) == 0
    ds = fastsd.load_sweep(tmp_path / "out").to_xarray()
    want = fastsd.sweep_risk(X, theta, 0.5, np.logspace(-2, 2, 4), [0.0, 0.5, 2.0], 2)
    np.testing.assert_allclose(ds["risk"].values, want, rtol=1e-12)
    np.testing.assert_array_equal(ds["xi"].values, [0.0, 0.5, 2.0])
    np.testing.assert_array_equal(ds["xi_schedule"].values, [[0.0, 0.0], [0.5, 0.5], [2.0, 2.0]])


def test_sweep_validation_on_csv(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(60, 4))
    data[:, -1] = data[:, :3] @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=60)
    np.savetxt(tmp_path / "data.csv", data, delimiter=",")
    cfg = write_config(
        tmp_path,
        """
[problems]
source = "csv"
path = "data.csv"
[grid]
lams = [0.1, 1.0, 10.0]
max_steps = 2
[run]
selection = "validation"
output = "out"
""",
    )
    assert main(["sweep", str(cfg), "--no-progress"]) == 0
    frame = fastsd.load_sweep(tmp_path / "out").to_dataframe()
    assert len(frame) == 3 * 3
    assert np.all(np.isfinite(frame["val_mse"])) and np.all(np.isfinite(frame["test_mse"]))


def test_interrupted_sweep_resumes(tmp_path, npz_problems, monkeypatch):
    from fastsd.blocks.tasks import SweepTask

    cfg_path = write_config(tmp_path, ORACLE.format(selection="oracle"))
    calls = []
    real = SweepTask.__call__

    def flaky(self, block):
        calls.append(block.index)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, block)

    monkeypatch.setattr(SweepTask, "__call__", flaky)
    assert main(["sweep", str(cfg_path), "--no-progress"]) == 130
    # the finished block survived, the broken one left nothing
    assert sorted(os.listdir(tmp_path / "out" / "blocks")) == ["000000"]

    # without --resume an existing output is refused
    assert main(["sweep", str(cfg_path), "--no-progress"]) == 2
    calls.clear()

    def counted(self, block):
        calls.append(block.index)
        return real(self, block)

    monkeypatch.setattr(SweepTask, "__call__", counted)
    assert main(["sweep", str(cfg_path), "--no-progress", "--resume"]) == 0
    assert sorted(calls) == [1, 2]  # only the blocks not stored (5 problems, 2 per block)
    monkeypatch.setattr(SweepTask, "__call__", real)
    resumed = fastsd.load_sweep(tmp_path / "out").to_xarray().load()
    assert main(["sweep", str(cfg_path), "--no-progress", "--overwrite"]) == 0
    fresh = fastsd.load_sweep(tmp_path / "out").to_xarray().load()
    assert resumed.identical(fresh)


BAD_CONFIGS = [
    ("[problems]\nsource = 'nope'\n[grid]\nlams = [1.0]\n", "problems.source"),
    ("[problems]\nsource = 'npz'\npath = 'missing.npz'\n[grid]\nlams = [1.0]\n", "problems.path"),
    ("[problems]\nsource = 'npz'\npath = 'problems.npz'\n[grid]\nlams = [-1.0]\n", "grid.lams"),
    (
        "[problems]\nsource = 'npz'\npath = 'problems.npz'\n[grid]\nlams = [1.0]\nmax_steps = -1\n",
        "grid.max_steps",
    ),
    (
        "[problems]\nsource = 'npz'\npath = 'problems.npz'\n[grid]\nlams = [1.0]\n"
        "[run]\nselection = 'fixed'\n",
        "grid.xis",
    ),
    (
        "[problems]\nsource = 'npz'\npath = 'problems.npz'\n[grid]\nlams = [1.0]\n"
        "[run]\nbackend = 'gpu'\n",
        "run.backend",
    ),
    ("[problems\nsource = ", "invalid TOML"),
    (
        "[problems]\nsource = 'npz'\npath = 'problems.npz'\n[grid]\nlams = [1.0]\n[extra]\n",
        "unknown section [extra]",
    ),
]


@pytest.mark.parametrize("body, message", BAD_CONFIGS)
def test_bad_config_one_line_error(tmp_path, npz_problems, capsys, body, message):
    cfg = write_config(tmp_path, body)
    assert main(["sweep", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_config_in_subprocess(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fastsd", "sweep", str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_reproduce_quick_end_to_end(tmp_path):
    """`fastsd reproduce --quick` writes the whole report (tables, figures, summary)."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastsd",
            "reproduce",
            "--quick",
            "--no-progress",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("mobahi_rounds.png", "borup_weighting.png", "teacher_student_map.png"):
        assert (out / "kernel" / name).stat().st_size > 0, name  # issue 11's kernel studies
    assert "Mobahi et al. (constrained pure SD" in (out / "summary.md").read_text()
    for name in (
        "summary.md",
        "uci_runs.csv",
        "uci_table.csv",
        "uci_alignment.csv",
        "uci_alignment.png",
        "uci_test_mse.png",
        "tuning_rules.md",
        "synthetic/gain_vs_rank.png",
        "synthetic/gain_vs_rank.csv",
        "tuning_summary.csv",
        "tuning_change.png",
        "learning_curves.csv",
        "learning_curves.png",
    ):
        assert (out / name).stat().st_size > 0, name
    from fastsd.experiments.reproduce import MARKER, REPORT_ENTRIES

    marker = json.loads((out / MARKER).read_text())  # what --overwrite may remove, no more
    written = sorted(name for name in os.listdir(out) if name != MARKER)
    assert marker["complete"] and marker["entries"] == written
    assert set(marker["entries"]) <= set(REPORT_ENTRIES)
    table = read_csv(out / "uci_table.csv")
    assert sorted(set(table["dataset"])) == ["air_quality", "airfoil", "appliances_energy"]
    assert np.all(np.isfinite(table["test_mse_mean"].astype(float)))
    summary = (out / "summary.md").read_text()
    assert "| dataset | ridge | 1-step SD | 2-step SD |" in summary
    assert "| Air Quality |" in summary and "| air_quality |" not in summary
    assert "## Tuning rules against scikit-learn's RidgeCV" in summary


def test_reproduce_rejects_bad_seeds(capsys):
    assert main(["reproduce", "--seeds", "0", "--no-progress", "--out", "unused"]) == 2
    assert "seeds" in capsys.readouterr().err
