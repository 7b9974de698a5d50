"""Sweep store integrity: every case of issue 10's "Why" as a regression test.

Overwrite safety, resume refusing a different config, unknown keys at any
level, one-line errors that leave nothing behind, size guards in the CLI and
the API, labelled results (manifest, coordinates, numeric xi, dtypes),
honest validation scores, and resume after SIGKILL at random moments.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import fastsd
from fastsd.cli import main

pytest.importorskip("zarr")
xr = pytest.importorskip("xarray")
pd = pytest.importorskip("pandas")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SYNTHETIC = """
[problems]
source = "synthetic"
family = "theorem1_family"
params = {{ ranks = [2, 3, 4, 5], seed = {seed} }}

[grid]
lams = {{ start = 1e-3, stop = 1e3, num = 5 }}
max_steps = 3

[run]
selection = "oracle"
output = "{output}"
block = {block}
"""


def write(tmp_path, body, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(body)
    return path


def synthetic(tmp_path, seed=0, output="out", block=2):
    return write(tmp_path, SYNTHETIC.format(seed=seed, output=output, block=block))


def run_cli(args, capsys=None):
    args = list(map(str, args))
    code = main(args + (["--no-progress"] if args[0] == "sweep" else []))
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


# ----------------------------------------------------------------------------
# --overwrite never destroys what fastsd did not write
# ----------------------------------------------------------------------------


def test_overwrite_parent_directory_refused(tmp_path, capsys):
    """`output = ".."` with --overwrite: refused, the config and its neighbours survive."""
    work = tmp_path / "work"
    work.mkdir()
    cfg = synthetic(work, output="..")
    (tmp_path / "precious.txt").write_text("keep me")
    code, err = run_cli(["sweep", cfg, "--overwrite"], capsys)
    assert_one_line_error(code, err, "refusing to overwrite")
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert cfg.exists()


def test_overwrite_refuses_foreign_and_special_directories(tmp_path, capsys, monkeypatch):
    cfg = synthetic(tmp_path, output="data")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    code, err = run_cli(["sweep", cfg, "--overwrite"], capsys)
    assert_one_line_error(code, err, "not a fastsd sweep output")
    assert (tmp_path / "data" / "notes.txt").exists()
    # a directory containing the config, even a fastsd output
    for output in (".", tmp_path):
        code, err = run_cli(["sweep", cfg, "--overwrite", "--output", output], capsys)
        assert_one_line_error(code, err, "refusing to overwrite")
    # the root and the home directory
    code, err = run_cli(["sweep", cfg, "--overwrite", "--output", "/"], capsys)
    assert_one_line_error(code, err, "root directory")
    home = tmp_path / "home"
    home.mkdir()
    (home / "manifest.json").write_text(json.dumps({"fastsd_sweep": 1}))
    monkeypatch.setenv("HOME", str(home))
    code, err = run_cli(["sweep", cfg, "--overwrite", "--output", home], capsys)
    assert_one_line_error(code, err, "home directory")
    assert (home / "manifest.json").exists()
    assert cfg.exists()


def test_overwrite_of_a_fastsd_output_removes_only_fastsd_entries(tmp_path, capsys):
    cfg = synthetic(tmp_path)
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    # a stranger's file in the output: refused, nothing deleted
    (tmp_path / "out" / "mine.txt").write_text("x")
    code, err = run_cli(["sweep", cfg, "--overwrite"], capsys)
    assert_one_line_error(code, err, "did not write", "mine.txt")
    assert (tmp_path / "out" / "manifest.json").exists()
    os.remove(tmp_path / "out" / "mine.txt")
    assert run_cli(["sweep", cfg, "--overwrite"], capsys)[0] == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["blocks", "manifest.json", "results.zarr"]


# ----------------------------------------------------------------------------
# --resume never mixes configs
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda body: body.replace("seed = 0", "seed = 1"), "problems.params.seed"),
        (lambda body: body.replace("num = 5", "num = 6"), "grid.lams"),
        (lambda body: body.replace("max_steps = 3", "max_steps = 2"), "grid.max_steps"),
        (
            lambda body: body.replace('selection = "oracle"', 'selection = "fixed"').replace(
                "max_steps = 3", "max_steps = 3\nxis = [0.5]"
            ),
            "grid.xis",
        ),
    ],
)
def test_resume_refuses_a_different_config(tmp_path, capsys, change, key):
    cfg = synthetic(tmp_path)
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    before = fastsd.load_sweep(tmp_path / "out").to_xarray().load()
    write(tmp_path, change(cfg.read_text()))
    code, err = run_cli(["sweep", cfg, "--resume"], capsys)
    assert_one_line_error(code, err, "cannot resume", key)
    assert fastsd.load_sweep(tmp_path / "out").to_xarray().load().identical(before)


def test_resume_ignores_output_and_threads(tmp_path, capsys):
    cfg = synthetic(tmp_path)
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    write(tmp_path, cfg.read_text().replace("block = 2", "block = 2\nthreads = 1"))
    assert run_cli(["sweep", cfg, "--resume"], capsys)[0] == 0


def test_data_file_change_refuses_resume(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "p.npz", X=rng.normal(size=(3, 20, 4)), theta_star=rng.normal(size=(3, 4)))
    cfg = write(tmp_path, "[problems]\nsource = 'npz'\npath = 'p.npz'\n[grid]\nlams = [1.0]\n")
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    np.savez(tmp_path / "p.npz", X=rng.normal(size=(3, 20, 4)), theta_star=rng.normal(size=(3, 4)))
    code, err = run_cli(["sweep", cfg, "--resume"], capsys)
    assert_one_line_error(code, err, "problems.sha256")


# ----------------------------------------------------------------------------
# unknown keys, bad values: one line, exit 2, nothing left behind
# ----------------------------------------------------------------------------

TYPOS = [
    ("max_steps = 3", "max_step = 3", "grid.max_step", "'max_steps'"),
    ('output = "out"', 'ouput = "out"', "run.ouput", "'output'"),
    ('selection = "oracle"', 'selction = "oracle"', "run.selction", "'selection'"),
    ("seed = 0 }", "sed = 0 }", "problems.params.sed", "'seed'"),
    ("num = 5 }", "num = 5, stpo = 3 }", "grid.lams.stpo", "'stop'"),
    ("[run]", "[rnu]", "section [rnu]", "'run'"),
]


@pytest.mark.parametrize("old, new, key, suggestion", TYPOS, ids=[t[2] for t in TYPOS])
def test_unknown_keys_are_errors_with_a_suggestion(tmp_path, capsys, old, new, key, suggestion):
    cfg = synthetic(tmp_path)
    write(tmp_path, cfg.read_text().replace(old, new))
    code, err = run_cli(["sweep", cfg], capsys)
    assert_one_line_error(code, err, key, f"did you mean {suggestion}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "old, new, needle",
    [
        ('family = "theorem1_family"', 'family = "dataclass"', "problems.family"),
        ('family = "theorem1_family"', 'family = "ProblemBatch"', "problems.family"),
        ("max_steps = 3", "max_steps = 1000000", "run.max_output_gb"),
        ("block = 2", 'block = 2\nmemory_limit = "1KiB"', "run.memory_limit"),
        ("block = 2", "block = 0", "run.block"),
        ("block = 2", 'block = 2\nmemory_limit = "lots"', "run.memory_limit"),
        ("ranks = [2, 3, 4, 5]", "ranks = [0]", "problems.params"),
    ],
)
def test_bad_values_fail_before_anything_is_written(tmp_path, capsys, old, new, needle):
    cfg = synthetic(tmp_path)
    write(tmp_path, cfg.read_text().replace(old, new))
    code, err = run_cli(["sweep", cfg], capsys)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "out").exists()


def test_failure_in_the_first_block_leaves_nothing(tmp_path, capsys, monkeypatch):
    from fastsd.blocks.tasks import SweepTask

    def broken(self, block):
        raise RuntimeError("disk on fire")

    cfg = synthetic(tmp_path)
    monkeypatch.setattr(SweepTask, "__call__", broken)
    code, err = run_cli(["sweep", cfg], capsys)
    assert_one_line_error(code, err, "RuntimeError: disk on fire")
    assert not (tmp_path / "out").exists()
    # an existing empty directory is kept (fastsd did not create it), but emptied
    (tmp_path / "out").mkdir()
    code, err = run_cli(["sweep", cfg], capsys)
    assert code == 2 and os.listdir(tmp_path / "out") == []
    monkeypatch.undo()
    assert run_cli(["sweep", cfg], capsys)[0] == 0


def test_other_cli_errors_are_one_line(tmp_path, capsys):
    code, err = run_cli(["export", tmp_path], capsys)
    assert_one_line_error(code, err, "not a fastsd sweep output")
    code, err = run_cli(["plot", tmp_path / "missing"], capsys)
    assert_one_line_error(code, err, "not a fastsd sweep output")
    cfg = synthetic(tmp_path)
    code, err = run_cli(["sweep", cfg, "--scheduler", "nowhere"], capsys)
    assert_one_line_error(code, err, "scheduler")
    assert not (tmp_path / "out").exists()
    # a bad scheduler is found before --overwrite removes anything
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    code, err = run_cli(["sweep", cfg, "--overwrite", "--scheduler", "tcp://"], capsys)
    assert_one_line_error(code, err, "scheduler")
    assert fastsd.load_sweep(tmp_path / "out").complete
    code, err = run_cli(["sweep", cfg, "--resume", "--overwrite"], capsys)
    assert_one_line_error(code, err, "not both")
    code, err = run_cli(["sweep", tmp_path], capsys)
    assert_one_line_error(code, err, "directory")


def test_readme_config_is_valid(tmp_path, capsys):
    """The config in the user guide's "Sweep configs" section runs as it stands."""
    readme = open(os.path.join(ROOT, "docs", "user_guide", "scale.md")).read()
    section = readme[readme.index("## Sweep configs") :]
    body = section[section.index("```toml") + len("```toml") : section.index("```\n", 10)]
    cfg = write(tmp_path, body)
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    ds = fastsd.load_sweep(tmp_path / "sweep-out").to_xarray()
    assert dict(ds.sizes) == {"problem": 3, "lam": 25, "k": 5, "step": 4}


# ----------------------------------------------------------------------------
# size guards in the API
# ----------------------------------------------------------------------------


def test_api_refuses_huge_results_before_allocating():
    rng = np.random.default_rng(0)
    X, theta = rng.normal(size=(1, 10, 3)), rng.normal(size=(1, 3))
    start = time.perf_counter()
    with pytest.raises(ValueError, match="GiB"):
        fastsd.sweep_risk(X, theta, 1.0, [1.0], [0.5], 10**9)
    with pytest.raises(ValueError, match="optimal_xi"):
        fastsd.optimal_xi(X[0], theta[0], 1.0, 1.0, 10**6)
    with pytest.raises(ValueError, match="sweep_optimal"):
        fastsd.sweep_optimal(X, theta, 1.0, np.ones(10**5), 200)
    with pytest.raises(ValueError, match="sweep_risk"):
        fastsd.sweep_risk(X, theta, 1.0, np.ones(10**4), np.zeros(10**4), 10)
    y = rng.normal(size=(1, 10))
    with pytest.raises(ValueError, match="sweep_optimal_validation"):
        fastsd.sweep_optimal_validation(X, y, X, y, [1.0], 10**5)
    with pytest.raises(ValueError, match="sweep_mse"):
        fastsd.sweep_mse(X, y, X, y, [1.0], [0.5], 10**9)
    assert time.perf_counter() - start < 5.0


# ----------------------------------------------------------------------------
# labelled results
# ----------------------------------------------------------------------------


def test_manifest_and_labels(tmp_path, capsys):
    cfg = synthetic(tmp_path)
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["fastsd_sweep"] == 1 and manifest["complete"] is True
    assert manifest["config"]["problems"]["params"]["seed"] == 0
    assert manifest["config"]["split"] == {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}
    assert manifest["config"]["preprocess"] == {"standardize": True, "intercept": True}
    assert len(manifest["config_hash"]) == 64
    assert set(manifest["versions"]) >= {"fastsd", "numpy", "numba"}
    assert manifest["host"]
    ds = xr.open_zarr(tmp_path / "out" / "results.zarr")
    assert dict(ds.sizes) == {"problem": 4, "lam": 5, "k": 4, "step": 3}
    np.testing.assert_allclose(ds["lam"].values, np.logspace(-3, 3, 5))
    assert ds["rank"].values.tolist() == [2, 3, 4, 5]
    assert ds["seed"].values.tolist() == [0] * 4
    np.testing.assert_allclose(ds["noise_var"].values, 0.1)
    assert ds["xi"].dtype == np.float64 and ds["xi_reproducible"].dtype == bool
    assert ds.attrs["family"] == "theorem1_family"


def test_store_xarray_dataframe_round_trip(tmp_path, capsys):
    """Store -> xarray -> DataFrame, with the API's numbers and every column's dtype."""
    cfg = synthetic(tmp_path)
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    batch = fastsd.problems.theorem1_family([2, 3, 4, 5], seed=0)
    lams = np.logspace(-3, 3, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastsd.IllConditionedXiWarning)
        risk, xi = fastsd.sweep_optimal(batch.X, batch.theta_star, batch.noise_var, lams, 3)
        labelled = fastsd.sweep_optimal_chunked(
            batch.X, batch.theta_star, batch.noise_var, lams, 3, labels=True
        )
    result = fastsd.load_sweep(tmp_path / "out")
    ds = result.to_xarray().load()
    np.testing.assert_allclose(ds["risk"].values, risk, rtol=1e-12)
    np.testing.assert_allclose(ds["xi"].values[:, :, 1:], xi, rtol=1e-12)
    assert np.isnan(ds["xi"].values[:, :, 0]).all()
    assert np.array_equal(ds["xi_reproducible"].values[:, :, 1:], ~np.isnan(xi[..., 0]))
    # the in-memory labelled form has the same variables and values
    for name in ("risk", "xi", "xi_reproducible"):
        np.testing.assert_allclose(labelled[name].values, ds[name].values, rtol=1e-12)
        assert labelled[name].dims == ds[name].dims
    frame = result.to_dataframe()
    dtypes = {
        "problem": "int64",
        "lam": "float64",
        "k": "int64",
        "risk": "float64",
        "xi_reproducible": "bool",
        "xi_1": "float64",
        "xi_2": "float64",
        "xi_3": "float64",
        "rank": "int64",
        "seed": "int64",
        "noise_var": "float64",
    }
    for column, dtype in dtypes.items():
        assert str(frame[column].dtype) == dtype, column
    assert list(frame.columns[:8]) == [
        "problem",
        "lam",
        "k",
        "risk",
        "xi_reproducible",
        "xi_1",
        "xi_2",
        "xi_3",
    ]
    assert len(frame) == 4 * 5 * 4
    row = frame[(frame.problem == 2) & (frame.k == 2)].iloc[3]
    assert row["lam"] == lams[3] and row["risk"] == ds["risk"].values[2, 3, 2]
    assert row["xi_3"] != row["xi_3"]  # NaN past k
    # export: the same table from CSV and parquet
    assert run_cli(["export", tmp_path / "out", "--format", "csv"], capsys)[0] == 0
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    pd.testing.assert_frame_equal(csv, frame, check_exact=False, rtol=1e-15)
    pytest.importorskip("pyarrow")
    assert run_cli(["export", tmp_path / "out", "--format", "parquet"], capsys)[0] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / "results.parquet"), frame)


def test_fixed_sweep_labels_and_best_lambda_values(tmp_path, capsys):
    body = (
        SYNTHETIC.format(seed=0, output="out", block=3)
        .replace('selection = "oracle"', 'selection = "fixed"')
        .replace("max_steps = 3", "max_steps = 2\nxis = [0.0, 0.5, 1.5]")
    )
    cfg = write(tmp_path, body)
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    ds = fastsd.load_sweep(tmp_path / "out").to_xarray()
    assert ds["risk"].dims == ("problem", "lam", "schedule", "k")
    frame = fastsd.load_sweep(tmp_path / "out").to_dataframe()
    assert list(frame.columns[:6]) == ["problem", "lam", "schedule", "k", "xi", "risk"]
    assert frame["xi"].dtype == np.float64
    # BestRisk reports lambda values, not only indices
    batch = fastsd.problems.theorem1_family([2, 3, 4, 5], seed=0)
    best = fastsd.sweep_risk_chunked(
        batch.X,
        batch.theta_star,
        batch.noise_var,
        ds["lam"].values,
        [0.0, 0.5, 1.5],
        2,
        reduce="min",
    )
    np.testing.assert_array_equal(best.lam, ds["lam"].values[best.lam_index])
    flat = ds["risk"].values.transpose(0, 3, 1, 2).reshape(4, 3, -1)
    np.testing.assert_array_equal(best.risk, flat.min(axis=-1))


@pytest.mark.parametrize("selection", ["oracle", "fixed"])
def test_zero_steps_store_and_table(tmp_path, capsys, selection):
    body = SYNTHETIC.format(seed=0, output="out", block=2).replace("max_steps = 3", "max_steps = 0")
    if selection == "fixed":
        body = body.replace('selection = "oracle"', 'selection = "fixed"').replace(
            "max_steps = 0", "max_steps = 0\nxis = [0.5]"
        )
    cfg = write(tmp_path, body)
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    frame = fastsd.load_sweep(tmp_path / "out").to_dataframe()
    assert len(frame) == 4 * 5 and set(frame["k"]) == {0}
    assert not any(c[3:].isdigit() for c in frame.columns if c.startswith("xi_"))


def test_nan_xi_warns_once_with_the_count():
    batch = fastsd.problems.theorem1_family([6, 8], seed=0)
    lams = np.logspace(-3, 3, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, xi = fastsd.sweep_optimal_chunked(
            batch.X, batch.theta_star, batch.noise_var, lams, 6, memory_limit=200_000
        )
    ill = [w for w in caught if issubclass(w.category, fastsd.IllConditionedXiWarning)]
    count = int(np.isnan(xi[..., 0]).sum())
    assert count > 0
    assert len(ill) == 1 and f"{count} of {xi[..., 0].size}" in str(ill[0].message)


@pytest.mark.parametrize("selection", ["oracle", "fixed"])
def test_plot_writes_the_standard_figures(tmp_path, capsys, selection):
    pytest.importorskip("matplotlib")
    body = SYNTHETIC.format(seed=0, output="out", block=2)
    if selection == "fixed":
        body = body.replace('selection = "oracle"', 'selection = "fixed"').replace(
            "max_steps = 3", "max_steps = 2\nxis = [0.0, 0.5]"
        )
    cfg = write(tmp_path, body)
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    assert run_cli(["plot", tmp_path / "out"], capsys)[0] == 0
    for name in ("metric_vs_lam.png", "best_vs_k.png", "xi_heatmap.png"):
        data = (tmp_path / "out" / "figures" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    # the figures belong to the output: --overwrite may remove them
    assert run_cli(["sweep", cfg, "--overwrite"], capsys)[0] == 0


# ----------------------------------------------------------------------------
# honest scores
# ----------------------------------------------------------------------------


def test_validation_reports_test_mse_on_held_out_rows(tmp_path, capsys):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(50, 4)) * [1.0, 3.0, 0.5, 1.0] + [2.0, -1.0, 0.0, 0.0]
    data[:, -1] = data[:, :3] @ [1.0, -2.0, 0.5] + 4.0 + 0.3 * rng.normal(size=50)
    np.savetxt(tmp_path / "data.csv", data, delimiter=",")
    cfg = write(
        tmp_path,
        """
[problems]
source = "csv"
path = "data.csv"
[split]
val_fraction = 0.3
test_fraction = 0.2
seed = 7
[preprocess]
standardize = true
intercept = true
[grid]
lams = [0.01, 1.0, 30.0]
max_steps = 2
[run]
selection = "validation"
output = "out"
""",
    )
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    result = fastsd.load_sweep(tmp_path / "out")
    assert result.manifest["config"]["split"] == {
        "val_fraction": 0.3,
        "test_fraction": 0.2,
        "seed": 7,
    }
    ds = result.to_xarray().load()
    assert int(ds["n_train"][0]) == 25 and int(ds["n_val"][0]) == 15
    assert int(ds["n_test"][0]) == 10
    # recompute by hand: same split, training statistics, estimator at the chosen xi
    sp = fastsd.datasets.split_dataset(
        data[:, :3], data[:, 3], val_fraction=0.3, test_fraction=0.2, seed=7
    )
    mean, std, ymean = sp.X_train.mean(0), sp.X_train.std(0), sp.y_train.mean()
    Xtr, Xte = (sp.X_train - mean) / std, (sp.X_test - mean) / std
    ytr, yte = sp.y_train - ymean, sp.y_test - ymean
    Xva, yva = (sp.X_val - mean) / std, sp.y_val - ymean
    for li, lam in enumerate([0.01, 1.0, 30.0]):
        for k in range(3):
            xi_k = ds["xi"].values[0, li, k, :k]
            theta = fastsd.self_distill(Xtr, ytr, lam, xi_k)
            np.testing.assert_allclose(
                ds["test_mse"].values[0, li, k], np.mean((yte - Xte @ theta) ** 2), rtol=1e-9
            )
            np.testing.assert_allclose(
                ds["val_mse"].values[0, li, k], np.mean((yva - Xva @ theta) ** 2), rtol=1e-9
            )
    # its figures show the test MSE at the validation choice
    assert run_cli(["plot", tmp_path / "out"], capsys)[0] == 0
    assert (tmp_path / "out" / "figures" / "best_vs_k.png").stat().st_size > 5000


# ----------------------------------------------------------------------------
# SIGKILL at random moments, then --resume: identical to an uninterrupted run
# ----------------------------------------------------------------------------

KILL_CONFIG = """
[problems]
source = "synthetic"
family = "theorem1_family"
params = { ranks = [2, 3, 4, 5, 6, 7, 8, 3, 4, 5], seed = 4 }
[grid]
lams = { start = 1e-3, stop = 1e3, num = 12 }
max_steps = 4
[run]
selection = "oracle"
output = "out"
block = 1
memory_limit = "108KiB"
"""


#: A helper process that imports fastsd once, then forks one `fastsd sweep` per line of
#: stdin (tab-separated arguments), prints the child's PID, and reaps it: each killed run
#: is a real process without paying the interpreter start and imports ten times.
FORK_SERVER = r"""
import os, sys
import fastsd.cli, fastsd.config.run, zarr, xarray
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os._exit(fastsd.cli.main(line.rstrip("\n").split("\t")))
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""


def _readline(proc, timeout):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no answer from the fork server within {timeout} s")
    return proc.stdout.readline().strip()


@pytest.mark.slow
def test_resume_after_sigkill_at_random_points(tmp_path, capsys):
    cfg = write(tmp_path, KILL_CONFIG)
    ref_dir = tmp_path / "ref"
    code, err = run_cli(["sweep", cfg, "--output", ref_dir], capsys)
    assert code == 0, err
    reference = fastsd.load_sweep(ref_dir).to_xarray().load()
    n_blocks = fastsd.load_sweep(ref_dir).manifest["plan"]["blocks"]
    assert n_blocks >= 30
    rng = np.random.default_rng(2024)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    server = subprocess.Popen(
        [sys.executable, "-c", FORK_SERVER],
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    killed_at = []
    try:
        for trial in range(10):
            out = tmp_path / f"run{trial}"
            target = int(rng.integers(0, n_blocks))  # blocks done before the kill (about)
            server.stdin.write(
                "\t".join(["sweep", str(cfg), "--output", str(out), "--no-progress"]) + "\n"
            )
            server.stdin.flush()
            pid = int(_readline(server, 60))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if select.select([server.stdout], [], [], 0)[0]:
                    break  # finished (and reaped) before the kill
                blocks = out / "blocks"
                if blocks.is_dir() and len(os.listdir(blocks)) >= target:
                    time.sleep(float(rng.uniform(0, 0.01)))
                    os.kill(pid, signal.SIGKILL)
                    break
                time.sleep(0.002)
            else:
                os.kill(pid, signal.SIGKILL)
            assert _readline(server, 60) == "reaped"
            done = len(os.listdir(out / "blocks")) if (out / "blocks").is_dir() else -1
            killed_at.append(done)
            code, err = run_cli(["sweep", cfg, "--output", out, "--resume"], capsys)
            assert code == 0, err
            got = fastsd.load_sweep(out).to_xarray().load()
            assert got.identical(reference), f"trial {trial}, killed after {done} blocks"
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            server.kill()
            server.wait(timeout=30)
    # the kills landed at different moments, mostly mid-run
    assert len(set(killed_at)) >= 5, killed_at


# ----------------------------------------------------------------------------
# writes, loading and readers at scale
# ----------------------------------------------------------------------------


def test_a_failed_write_stops_the_run_with_one_line_and_marks_nothing(tmp_path, capsys):
    """A chunk that cannot be written (a file where its directory goes): exit 2 with one
    line naming it, no marker for that block; --resume completes the same Dataset."""
    cfg = synthetic(tmp_path, block=1)  # 4 blocks
    assert run_cli(["sweep", cfg, "--output", tmp_path / "ref"], capsys)[0] == 0
    reference = fastsd.load_sweep(tmp_path / "ref").to_xarray().load()

    def stop(done, total):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore", fastsd.IllConditionedXiWarning)
        fastsd.config.run.run_sweep(str(cfg), progress=stop)
    obstacle = tmp_path / "out" / "results.zarr" / "risk" / "c" / "2"
    obstacle.write_text("not a directory")
    code, err = run_cli(["sweep", cfg, "--resume"], capsys)
    assert_one_line_error(code, err, os.path.join("risk", "c", "2"))
    assert "000002" not in os.listdir(tmp_path / "out" / "blocks")
    assert not fastsd.load_sweep(tmp_path / "out").complete
    obstacle.unlink()
    assert run_cli(["sweep", cfg, "--resume"], capsys)[0] == 0
    assert fastsd.load_sweep(tmp_path / "out").to_xarray().load().identical(reference)


def test_npz_members_are_memory_mapped_and_travel_as_file_references(tmp_path, capsys):
    import pickle

    from fastsd.blocks.tasks import SweepTask
    from fastsd.config.run import load_config
    from fastsd.config.sources import load_problems

    rng = np.random.default_rng(7)
    X, theta = rng.normal(size=(6, 30, 4)), rng.normal(size=(6, 4))
    body = SYNTHETIC.replace(
        'source = "synthetic"\nfamily = "theorem1_family"\nparams = {{ ranks = [2, 3, 4, 5], '
        "seed = {seed} }}",
        'source = "npz"\npath = "{seed}.npz"',
    )
    datasets = {}
    for name, save in (("plain", np.savez), ("packed", np.savez_compressed)):
        save(tmp_path / f"{name}.npz", X=X, theta_star=theta, noise_var=0.5)
        cfg = write(tmp_path, body.format(seed=name, output=name, block=2), f"{name}.toml")
        arrays = load_problems(load_config(cfg).resolved).arrays
        assert isinstance(arrays["X"], np.memmap) == (name == "plain")
        np.testing.assert_array_equal(arrays["X"], X)
        task = SweepTask(
            "optimal", arrays["X"], np.ones(3), 2, theta_star=theta, noise_var=np.full(6, 0.5)
        )
        if name == "plain":  # the file and offset travel, not the data
            assert len(pickle.dumps(task)) < 4096 < X.nbytes
            sub = pickle.loads(pickle.dumps(task.subset(2, 5)))
            assert isinstance(sub.X, np.memmap) and sub.first == 2
            np.testing.assert_array_equal(sub.X, X[2:5])
        assert run_cli(["sweep", cfg], capsys)[0] == 0
        datasets[name] = fastsd.load_sweep(tmp_path / name).to_xarray().load()
    xr.testing.assert_equal(datasets["plain"], datasets["packed"])


def test_to_xarray_is_lazy_and_dataframes_come_block_by_block(tmp_path, capsys):
    dask_array = pytest.importorskip("dask.array")
    cfg = synthetic(tmp_path, block=2)
    assert run_cli(["sweep", cfg], capsys)[0] == 0
    result = fastsd.load_sweep(tmp_path / "out")
    ds = result.to_xarray()
    for name in ("risk", "xi", "xi_reproducible"):
        assert isinstance(ds[name].data, dask_array.Array)
        assert ds[name].data.chunks[:2] == ((2, 2), (5,))  # one chunk per block
    loaded = ds.load()
    assert isinstance(loaded["risk"].data, np.ndarray)
    whole = result.to_dataframe()
    # pieces of ~7 rows: a block (2 problems x 5 lambdas x 4 k) cut per problem (20 rows)
    pieces = list(result.iter_dataframes(rows=7))
    assert [len(p) for p in pieces] == [20] * 4
    pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), whole)
    for fmt in ("csv", "parquet"):
        path = str(tmp_path / f"t.{fmt}")
        assert result.export(path, fmt, rows=7) == len(whole)
        back = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
        pd.testing.assert_frame_equal(back, whole, check_exact=False, rtol=1e-15)
