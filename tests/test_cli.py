"""The ``fastsd`` command line: sweeps from configs, resume, errors, info."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastsd
from fastsd import config_sweep
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


@pytest.mark.parametrize("command", [[], ["reproduce"], ["sweep"], ["info"]])
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


def test_sweep_oracle_matches_api(tmp_path, npz_problems, capsys):
    _, X, theta = npz_problems
    cfg = write_config(tmp_path, ORACLE.format(selection="oracle"))
    assert main(["sweep", str(cfg), "--no-progress"]) == 0
    table = read_csv(tmp_path / "out" / "results.csv")
    risk, _ = fastsd.sweep_optimal(X, theta, 0.5, np.logspace(-2, 2, 4), 3)
    assert table["problem"].size == 5 * 4 * 4
    got = table["risk"].astype(float).reshape(5, 4, 4)
    np.testing.assert_allclose(got, risk, rtol=1e-12)


def test_sweep_fixed(tmp_path, npz_problems):
    _, X, theta = npz_problems
    body = ORACLE.format(selection="fixed").replace("max_steps = 3", "max_steps = 2\nxis = [0.0, 0.5, 2.0]")
    cfg = write_config(tmp_path, body)
    assert main(["sweep", str(cfg), "--no-progress"]) == 0
    table = read_csv(tmp_path / "out" / "results.csv")
    want = fastsd.sweep_risk(X, theta, 0.5, np.logspace(-2, 2, 4), [0.0, 0.5, 2.0], 2)
    np.testing.assert_allclose(table["risk"].astype(float).reshape(want.shape), want, rtol=1e-12)


def test_sweep_validation_on_csv(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(60, 4))
    data[:, -1] = data[:, :3] @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=60)
    np.savetxt(tmp_path / "data.csv", data, delimiter=",")
    cfg = write_config(tmp_path, """
[problems]
source = "csv"
path = "data.csv"
[grid]
lams = [0.1, 1.0, 10.0]
max_steps = 2
[run]
selection = "validation"
output = "out"
""")
    assert main(["sweep", str(cfg), "--no-progress"]) == 0
    table = read_csv(tmp_path / "out" / "results.csv")
    assert table["val_mse"].size == 3 * 3
    assert np.all(np.isfinite(table["val_mse"].astype(float)))


def test_interrupted_sweep_resumes(tmp_path, npz_problems, monkeypatch):
    cfg_path = write_config(tmp_path, ORACLE.format(selection="oracle"))
    calls = []
    real = config_sweep._block_rows

    def flaky(cfg, arrays, b0, b1):
        calls.append(b0)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(cfg, arrays, b0, b1)

    monkeypatch.setattr(config_sweep, "_block_rows", flaky)
    assert main(["sweep", str(cfg_path), "--no-progress"]) == 130
    parts = sorted(os.listdir(tmp_path / "out" / "parts"))
    assert parts == ["00000000.csv"]  # the finished block survived, the broken one left nothing

    # without --resume an existing output is refused
    assert main(["sweep", str(cfg_path), "--no-progress"]) == 2
    calls.clear()
    monkeypatch.setattr(config_sweep, "_block_rows", real)
    assert main(["sweep", str(cfg_path), "--no-progress", "--resume"]) == 0
    resumed = read_csv(tmp_path / "out" / "results.csv")
    assert main(["sweep", str(cfg_path), "--no-progress", "--overwrite"]) == 0
    fresh = read_csv(tmp_path / "out" / "results.csv")
    for key in fresh:
        np.testing.assert_array_equal(resumed[key], fresh[key])


BAD_CONFIGS = [
    ("[problems]\nsource = 'nope'\n[grid]\nlams = [1.0]\n", "problems.source"),
    ("[problems]\nsource = 'npz'\npath = 'missing.npz'\n[grid]\nlams = [1.0]\n", "problems.path"),
    ("[problems]\nsource = 'npz'\npath = 'problems.npz'\n[grid]\nlams = [-1.0]\n", "grid.lams"),
    ("[problems]\nsource = 'npz'\npath = 'problems.npz'\n[grid]\nlams = [1.0]\nmax_steps = -1\n",
     "grid.max_steps"),
    ("[problems]\nsource = 'npz'\npath = 'problems.npz'\n[grid]\nlams = [1.0]\n"
     "[run]\nselection = 'fixed'\n", "grid.xis"),
    ("[problems]\nsource = 'npz'\npath = 'problems.npz'\n[grid]\nlams = [1.0]\n"
     "[run]\nbackend = 'gpu'\n", "run.backend"),
    ("[problems\nsource = ", "invalid TOML"),
    ("[problems]\nsource = 'npz'\npath = 'problems.npz'\n[grid]\nlams = [1.0]\n[extra]\n",
     "unknown section"),
]


@pytest.mark.parametrize("body, message", BAD_CONFIGS)
def test_bad_config_one_line_error(tmp_path, npz_problems, capsys, body, message):
    cfg = write_config(tmp_path, body)
    assert main(["sweep", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_config_in_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fastsd", "sweep", str(tmp_path / "none.toml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_reproduce_quick_end_to_end(tmp_path):
    """`fastsd reproduce --quick` writes the whole report (tables, figures, summary)."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "fastsd", "reproduce", "--quick", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("mobahi_rounds.png", "borup_weighting.png", "teacher_student_map.png"):
        assert (out / "kernel" / name).stat().st_size > 0, name  # issue 11's kernel studies
    assert "Mobahi et al. (constrained pure SD" in (out / "summary.md").read_text()
    for name in ("summary.md", "uci_runs.csv", "uci_table.csv", "uci_alignment.csv",
                 "uci_alignment.png", "uci_test_mse.png", "tuning_rules.md",
                 "synthetic/gain_vs_rank.png", "synthetic/gain_vs_rank.csv"):
        assert (out / name).stat().st_size > 0, name
    table = read_csv(out / "uci_table.csv")
    assert sorted(set(table["dataset"])) == ["air_quality", "airfoil", "appliances_energy"]
    assert np.all(np.isfinite(table["test_mse_mean"].astype(float)))
    summary = (out / "summary.md").read_text()
    assert "| dataset | ridge | 1-step SD | 2-step SD |" in summary


def test_reproduce_rejects_bad_seeds(capsys):
    assert main(["reproduce", "--seeds", "0", "--no-progress", "--out", "unused"]) == 2
    assert "seeds" in capsys.readouterr().err
