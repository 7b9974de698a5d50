"""Faults a new or unlucky user runs into, through the command line and configs.

Each test is one case of a fault report: an input accepted that should not
be, a folder or file damaged, a late refusal, or a message that names the
wrong thing. Each fails on the code before the fix and passes after it.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastsd
from fastsd.cli import main
from fastsd.experiments.reproduce import MARKER, prepare_report

CONFIG = """
[problems]
source = "synthetic"
family = "theorem1_family"
params = {{ ranks = [2, 3, 4] }}

[grid]
lams = {{ start = 0.01, stop = 10.0, num = 4 }}
{grid}
max_steps = 2

[run]
selection = "{selection}"
output = "{output}"
block = 1
"""


def write(tmp_path, body, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def config(tmp_path, selection="oracle", grid="", output="out"):
    return write(tmp_path, CONFIG.format(selection=selection, grid=grid, output=output))


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code, err, *needles):
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture()
def sweep_out(tmp_path, capsys):
    """A finished oracle sweep in tmp_path/out."""
    assert run(["sweep", config(tmp_path), "--no-progress"], capsys)[0] == 0
    return tmp_path / "out"


# ------------------------------------------------------------------ data loss


def test_reproduce_refuses_a_folder_that_is_not_a_report(tmp_path, capsys):
    """reproduce --output DIR on a non-report folder overwrote summary.md, uci_table.csv."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.md").write_text("my notes")
    (out / "uci_table.csv").write_text("a,b\n1,2\n")
    code, _, err = run(["reproduce", "--quick", "--no-progress", "--output", out], capsys)
    one_line_error(code, err, "is not empty and is not a fastsd report", "--overwrite")
    # with --overwrite, the report may go beside the user's files, never over them
    code, _, err = run(
        ["reproduce", "--quick", "--no-progress", "--output", out, "--overwrite"], capsys
    )
    one_line_error(code, err, "refusing to replace summary.md, uci_table.csv")
    assert (out / "summary.md").read_text() == "my notes"
    assert sorted(os.listdir(out)) == ["summary.md", "uci_table.csv"]


def test_reproduce_overwrite_removes_only_what_the_report_wrote(tmp_path):
    out = tmp_path / "report"
    (out / "synthetic").mkdir(parents=True)
    (out / "synthetic" / "gain_vs_rank.csv").write_text("x")
    (out / "summary.md").write_text("old report")
    (out / "notes.txt").write_text("mine")
    marker = {"fastsd_report": 1, "complete": True, "entries": ["summary.md", "synthetic"]}
    (out / MARKER).write_text(json.dumps(marker))
    with pytest.raises(ValueError, match="holds a fastsd report; pass --overwrite"):
        prepare_report(str(out))
    assert prepare_report(str(out), overwrite=True) == ["notes.txt"]
    assert sorted(os.listdir(out)) == ["notes.txt"]
    # a marker listing paths outside the folder is not a report's
    (out / MARKER).write_text(json.dumps(dict(marker, entries=["../elsewhere"])))
    with pytest.raises(ValueError, match="is not a fastsd report"):
        prepare_report(str(out))


def test_export_refuses_a_target_inside_the_store(sweep_out, capsys):
    """export OUT --to OUT/manifest.json exited 0 and destroyed the manifest."""
    manifest = (sweep_out / "manifest.json").read_bytes()
    for target in ("manifest.json", "results.zarr/x.csv", "blocks/t.csv"):
        code, _, err = run(["export", sweep_out, "--to", sweep_out / target], capsys)
        one_line_error(code, err, "is inside the sweep output")
    assert (sweep_out / "manifest.json").read_bytes() == manifest
    assert run(["export", sweep_out, "--to", sweep_out / "results.csv"], capsys)[0] == 0


# ------------------------------------------------------------------ silent wrong results


def test_export_format_follows_the_extension(sweep_out, tmp_path, capsys):
    """--to out.parquet wrote a CSV; --to out.csv --format parquet wrote Parquet."""
    pytest.importorskip("pyarrow")
    assert run(["export", sweep_out, "--to", tmp_path / "t.parquet"], capsys)[0] == 0
    assert (tmp_path / "t.parquet").read_bytes()[:4] == b"PAR1"
    code, _, err = run(
        ["export", sweep_out, "--to", tmp_path / "t.csv", "--format", "parquet"], capsys
    )
    one_line_error(code, err, "names a csv file, but --format is parquet")
    assert not (tmp_path / "t.csv").exists()
    code, _, err = run(["export", sweep_out, "--to", tmp_path / "t.txt"], capsys)
    one_line_error(code, err, "cannot tell the format from '.txt'")
    assert run(["export", sweep_out, "--to", tmp_path / "t.txt", "--format", "csv"], capsys)[0] == 0
    assert (tmp_path / "t.txt").read_text().startswith("problem,")


def test_cli_warns_about_inf_risks(tmp_path, capsys):
    """The CLI's fixed selection exported 24 of 72 risks as inf/NaN with no warning."""
    cfg = config(tmp_path, selection="fixed", grid="xis = [0.5, 1e200]")
    code, _, err = run(["sweep", cfg, "--no-progress"], capsys)
    assert code == 0
    risk = fastsd.load_sweep(tmp_path / "out").to_xarray()["risk"].values
    bad = int(np.count_nonzero(~np.isfinite(risk)))
    assert bad > 0
    assert err.strip() == (
        f"fastsd sweep: warning: {bad} of {risk.size} risks are inf or NaN (float64 overflow, "
        "e.g. from a very large |xi| or lambda); shrink the grid or rescale the problem"
    )


def test_resumed_sweep_counts_the_stored_blocks_too(tmp_path, capsys):
    from fastsd.store.manifest import BLOCKS

    cfg = config(tmp_path, selection="fixed", grid="xis = [0.5, 1e200]")
    assert run(["sweep", cfg, "--no-progress"], capsys)[0] == 0
    markers = sorted(os.listdir(tmp_path / "out" / BLOCKS))
    os.remove(tmp_path / "out" / BLOCKS / markers[-1])  # one block to redo
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    manifest["complete"] = False
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run(["sweep", cfg, "--no-progress", "--resume"], capsys)
    assert code == 0
    assert "warning: 24 of 72 risks are inf or NaN" in err


@pytest.mark.parametrize(
    "output", ["~/sweeps/out", "$FASTSD_TEST_DIR/out", "${FASTSD_TEST_DIR}/out"]
)
def test_home_and_variables_are_expanded_in_run_output(tmp_path, monkeypatch, capsys, output):
    """run.output = "~" created a folder literally named "~"."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FASTSD_TEST_DIR", str(home / "sweeps"))
    monkeypatch.chdir(tmp_path)
    assert run(["sweep", config(tmp_path, output=output), "--no-progress"], capsys)[0] == 0
    assert (home / "sweeps" / "out" / "manifest.json").exists()
    assert not any(name.startswith(("~", "$")) for name in os.listdir(tmp_path))


def test_unset_variables_in_paths_are_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FASTSD_NOT_SET", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["sweep", config(tmp_path, output="$FASTSD_NOT_SET/out")], capsys)
    one_line_error(code, err, "run.output", "FASTSD_NOT_SET is not set")
    code, _, err = run(["sweep", config(tmp_path), "--output", "${FASTSD_NOT_SET}"], capsys)
    one_line_error(code, err, "--output", "FASTSD_NOT_SET is not set")
    assert os.listdir(tmp_path) == ["sweep.toml"]


def test_cli_paths_expand_home(sweep_out, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert run(["export", "~/out", "--to", "~/table.csv"], capsys)[0] == 0
    assert (tmp_path / "table.csv").exists()


# ------------------------------------------------------------------ refused too late, or never


def test_huge_synthetic_params_are_refused_before_building(tmp_path, capsys):
    """problems.params.n = 10**9 built 14.9 GiB of problems before the size check."""
    body = CONFIG.format(selection="oracle", grid="", output="out").replace(
        "ranks = [2, 3, 4]", "ranks = [2, 3, 4], n = 1000000000"
    )
    code, _, err = run(["sweep", write(tmp_path, body), "--no-progress"], capsys)
    one_line_error(code, err, "theorem1_family", "GiB limit", "smaller n and d")
    assert not (tmp_path / "out").exists()


def test_npz_with_nan_in_the_last_problem_fails_before_the_output(tmp_path, capsys):
    """NaN in the last npz problem left 2 stored blocks; only --overwrite recovered."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 10, 2))
    X[2, 4, 1] = np.nan
    np.savez(tmp_path / "p.npz", X=X, theta_star=rng.normal(size=(3, 2)))
    body = CONFIG.format(selection="oracle", grid="", output="out").replace(
        'source = "synthetic"\nfamily = "theorem1_family"\nparams = { ranks = [2, 3, 4] }',
        'source = "npz"\npath = "p.npz"',
    )
    code, _, err = run(["sweep", write(tmp_path, body), "--no-progress"], capsys)
    one_line_error(
        code, err, "X contains NaN or infinite values (first at problem 2, row 4, column 1)"
    )
    assert not (tmp_path / "out").exists()
    X[2, 4, 1] = 0.0  # fixed: a fresh run works, nothing to resume or overwrite
    np.savez(tmp_path / "p.npz", X=X, theta_star=rng.normal(size=(3, 2)))
    assert run(["sweep", write(tmp_path, body), "--no-progress"], capsys)[0] == 0


@pytest.mark.parametrize(
    "arrays, needle",
    [
        (dict(y=np.ones((3, 9))), "y must have shape (3, 10) to match X"),
        (dict(y=np.ones((2, 10))), "y must have shape (3, 10) to match X"),
        (dict(theta_star=np.ones((3, 2)), noise_var=-np.ones(3)), "noise_var must be >= 0"),
        (dict(theta_star=np.array([["a", "b"]] * 3)), "theta_star must hold real numbers"),
        (
            dict(y=np.ones((3, 10)), X_val=np.ones((3, 4, 3))),
            "X_val must have shape (3, 4, 2) to match X",
        ),
    ],
)
def test_npz_arrays_are_checked_before_the_output(tmp_path, capsys, arrays, needle):
    X = np.random.default_rng(0).normal(size=(3, 10, 2))
    np.savez(tmp_path / "p.npz", X=X, **arrays)
    oracle = "theta_star" in arrays
    body = CONFIG.format(selection="oracle" if oracle else "validation", grid="", output="out")
    body = body.replace(
        'source = "synthetic"\nfamily = "theorem1_family"\nparams = { ranks = [2, 3, 4] }',
        'source = "npz"\npath = "p.npz"',
    )
    code, _, err = run(["sweep", write(tmp_path, body), "--no-progress"], capsys)
    one_line_error(code, err, needle)
    assert not (tmp_path / "out").exists()


def test_local_workers_are_bounded(tmp_path, capsys):
    """local:N had no upper bound."""
    code, _, err = run(["sweep", config(tmp_path), "--scheduler", "local:100000"], capsys)
    one_line_error(code, err, "between 1 and the number of CPU cores")
    assert not (tmp_path / "out").exists()


def test_an_unreachable_scheduler_fails_within_the_timeout(tmp_path, capsys):
    """--scheduler tcp://127.0.0.1:1 took 21 s to fail."""
    pytest.importorskip("distributed")
    start = time.monotonic()
    code, _, err = run(
        ["sweep", config(tmp_path), "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "1"],
        capsys,
    )
    assert time.monotonic() - start < 15  # 1 s to connect, the rest is start-up
    one_line_error(
        code, err, "could not connect to the Dask scheduler at tcp://127.0.0.1:1 within 1 s"
    )
    assert not (tmp_path / "out").exists()


def test_bench_json_is_checked_before_the_benchmark(tmp_path, capsys):
    """bench --json /nonexistent/x.json ran the whole benchmark before failing."""
    for argv, needle in (
        (["bench", "--quick", "--json", tmp_path / "missing" / "x.json"], "does not exist"),
        (["bench", "--runner", "--quick", "--json", tmp_path], "is a directory"),
    ):
        start = time.monotonic()
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        captured = capsys.readouterr()
        assert time.monotonic() - start < 10 and captured.out == ""  # nothing was measured
        one_line_error(exc.value.code, captured.err, "--json", needle)


def test_plot_without_results_leaves_nothing_behind(tmp_path, sweep_out, capsys):
    """plot on a folder without results.zarr left an empty figures/."""
    import shutil

    pytest.importorskip("matplotlib")
    shutil.rmtree(sweep_out / "results.zarr")
    code, _, err = run(["plot", sweep_out], capsys)
    assert code == 2 and "Traceback" not in err
    assert not (sweep_out / "figures").exists()


# ------------------------------------------------------------------ messages


def test_non_utf8_config_names_the_file(tmp_path, capsys):
    """A non-UTF-8 config gave a decode error naming no file."""
    path = tmp_path / "sweep.toml"
    path.write_bytes(CONFIG.format(selection="oracle", grid="", output="out").encode("utf-16"))
    code, _, err = run(["sweep", path], capsys)
    one_line_error(code, err, str(path), "not UTF-8 text")


def test_corrupted_zarr_metadata_names_the_file(sweep_out, capsys):
    """A corrupted zarr.json gave a decode error naming no file."""
    (sweep_out / "results.zarr" / "zarr.json").write_bytes(b"\xff\xfe{")
    for command in ("export", "plot"):
        code, _, err = run([command, sweep_out], capsys)
        one_line_error(code, err, os.path.join("results.zarr", "zarr.json"), "is damaged")


def test_manifest_that_is_a_json_list(sweep_out, tmp_path, capsys):
    """A manifest that is a JSON list gave an AttributeError (fixed on main; kept here)."""
    (sweep_out / "manifest.json").write_text("[1, 2]")
    code, _, err = run(["export", sweep_out], capsys)
    one_line_error(code, err, "manifest.json is not a fastsd sweep manifest")
    for flag in ("--resume", "--overwrite"):
        code, _, err = run(["sweep", str(tmp_path / "sweep.toml"), flag], capsys)
        one_line_error(code, err, "not a fastsd sweep output")


def test_negative_seed_names_the_key(tmp_path, capsys):
    """params.seed = -1 gave "expected non-negative integer", naming no key."""
    body = CONFIG.format(selection="oracle", grid="", output="out").replace(
        "ranks = [2, 3, 4]", "ranks = [2, 3, 4], seed = -1"
    )
    code, _, err = run(["sweep", write(tmp_path, body)], capsys)
    one_line_error(code, err, "problems.params.seed must be an integer >= 0", "got -1")


@pytest.mark.parametrize("scheduler", ["inproc://foo", "tcp://127.0.0.1", "tcp://host:99999"])
def test_bad_scheduler_addresses_are_named(tmp_path, capsys, scheduler):
    """--scheduler inproc://foo gave "not enough values to unpack"."""
    code, _, err = run(["sweep", config(tmp_path), "--scheduler", scheduler], capsys)
    one_line_error(code, err, "scheduler must be 'local:N' or 'tcp://HOST:PORT'", scheduler)


@pytest.mark.parametrize(
    "argv, prog",
    [
        (["sweep"], "fastsd sweep"),
        (["sweep", "a.toml", "--bogus"], "fastsd"),
        (["export"], "fastsd export"),
        (["nonsense"], "fastsd"),
        (["sweep", "a.toml", "--connect-timeout", "-1"], "fastsd sweep"),
        (["bench", "--repeat", "0"], "fastsd bench"),
        (["bench", "--runner", "--bogus"], "fastsd bench --runner"),
    ],
)
def test_usage_errors_are_one_line(argv, prog, capsys):
    """Argument-parsing errors printed the usage plus the error (2-4 lines)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    assert err.rstrip().endswith(f"(see {prog} --help)")


@pytest.mark.slow
def test_ctrl_c_under_local_workers_is_one_line(tmp_path):
    """Ctrl-C under --scheduler local:2 printed two ~30-line worker tracebacks."""
    pytest.importorskip("distributed")
    body = CONFIG.format(selection="oracle", grid="", output="out")
    body = body.replace("ranks = [2, 3, 4]", "ranks = " + str([16] * 48) + ", n = 64")
    body = body.replace("num = 4 }", "num = 20000 }").replace("max_steps = 2", "max_steps = 8")
    cfg = write(tmp_path, body)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastsd", "sweep", cfg, "--no-progress", "--scheduler", "local:2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        text=True,
    )
    # Ctrl-C once the workers have stored their first block (of about 40): mid-run
    # whether the kernels were compiled or loaded from the cache
    blocks = tmp_path / "out" / "blocks"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if blocks.is_dir() and any(blocks.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and err.startswith("fastsd: interrupted"), err


def test_a_closed_stdout_is_not_an_error():
    """`fastsd verify OUT --json | head` printed 'error: [Errno 32] Broken pipe'."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "fastsd", "info"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # before the interpreter has started: every write fails
    err = proc.communicate(timeout=120)[1]
    assert "Broken pipe" not in err and "Traceback" not in err, err


def test_too_many_threads_is_refused_before_the_output_exists(tmp_path, capsys):
    """run.threads above NUMBA_NUM_THREADS failed inside the first block, after the
    output was created, with a message that did not name run.threads."""
    body = CONFIG.format(selection="oracle", grid="", output="out") + "threads = 100000\n"
    code, _, err = run(["sweep", write(tmp_path, body), "--no-progress"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "run.threads" in err and "NUMBA_NUM_THREADS" in err, err
    assert not (tmp_path / "out").exists()
