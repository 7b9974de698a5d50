"""``fastsd sweep --overwrite`` replaces a store atomically and never destroys it first.

The new run is built beside the old one (``OUT.fastsd-new-XXXXXXXX``) and swapped in
once complete: every staged failure -- an exception mid-run, a failed swap, a
read-only or symlinked ``results.zarr``, a SIGKILL mid-overwrite -- leaves either the
old store (loading identically) or the complete new one, and what a killed overwrite
left beside the output is removed by the next run, never mistaken for user data.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import fastsd
from fastsd.blocks.tasks import StoreTask
from fastsd.cli import main
from fastsd.store import staging

pytest.importorskip("zarr")
pytest.importorskip("xarray")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = """
[problems]
source = "synthetic"
family = "theorem1_family"
params = {{ ranks = [{ranks}], seed = {seed} }}

[grid]
lams = {{ start = 1e-3, stop = 1e3, num = {lams} }}
max_steps = 3

[run]
selection = "oracle"
output = "out"
block = 1
"""


def run(args, capsys):
    args = list(map(str, args))
    code = main(args + (["--no-progress"] if args[0] == "sweep" else []))
    return code, capsys.readouterr().err


def config(tmp_path, seed, ranks="2, 3, 4, 5", lams=5):
    path = tmp_path / f"seed{seed}.toml"
    path.write_text(CONFIG.format(seed=seed, ranks=ranks, lams=lams))
    return path


def load(out):
    return fastsd.load_sweep(out).to_xarray().load()


def siblings(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if ".fastsd-" in p.name)


@pytest.fixture()
def two_runs(tmp_path, capsys):
    """An old run in tmp_path/out (seed 0) and the reference of the new one (seed 1)."""
    old, new = config(tmp_path, 0), config(tmp_path, 1)
    assert run(["sweep", old], capsys)[0] == 0
    assert run(["sweep", new, "--output", tmp_path / "ref"], capsys)[0] == 0
    return old, new, load(tmp_path / "out"), load(tmp_path / "ref")


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_overwrite_swaps_in_the_complete_new_run(tmp_path, capsys, monkeypatch, two_runs, exchange):
    _, new, before, want = two_runs
    if not exchange:
        monkeypatch.setattr(staging, "_exchange", lambda a, b: False)
    (tmp_path / "out" / "results.csv").write_text("an export of the old run")
    mode = os.stat(tmp_path / "out").st_mode
    code, err = run(["sweep", new, "--overwrite"], capsys)
    assert code == 0, err
    assert load(tmp_path / "out").identical(want)
    assert not load(tmp_path / "out").identical(before)
    assert sorted(os.listdir(tmp_path / "out")) == ["blocks", "manifest.json", "results.zarr"]
    assert os.stat(tmp_path / "out").st_mode == mode
    assert siblings(tmp_path) == []
    assert run(["verify", tmp_path / "out"], capsys)[0] == 0


def test_an_exception_mid_overwrite_leaves_the_old_run(tmp_path, capsys, monkeypatch, two_runs):
    old, new, before, _ = two_runs
    write, calls = StoreTask.write, []

    def failing(self, block, computed):
        calls.append(block.index)
        if len(calls) == 3:
            raise RuntimeError("injected")
        return write(self, block, computed)

    monkeypatch.setattr(StoreTask, "write", failing)
    code, err = run(["sweep", new, "--overwrite"], capsys)
    assert code == 2 and "injected" in err
    assert load(tmp_path / "out").identical(before)
    assert siblings(tmp_path) == []
    monkeypatch.undo()
    code, err = run(["sweep", old, "--resume"], capsys)  # still the old run: resumable
    assert code == 0 and "failed verification" not in err


def test_an_interrupted_overwrite_says_the_output_is_unchanged(tmp_path, capsys, two_runs):
    _, new, before, _ = two_runs

    def stop(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="new run was discarded; .* is unchanged"):
        fastsd.config.run.run_sweep(str(new), overwrite=True, progress=stop)
    assert load(tmp_path / "out").identical(before) and siblings(tmp_path) == []


def test_a_failed_swap_leaves_the_old_run(tmp_path, capsys, monkeypatch, two_runs):
    _, new, before, want = two_runs

    def refuse(a, b):
        raise OSError(5, f"cannot swap {a} with {b}: injected")

    monkeypatch.setattr(staging, "_exchange", refuse)
    code, err = run(["sweep", new, "--overwrite"], capsys)
    assert code == 2 and "injected" in err
    assert load(tmp_path / "out").identical(before) and siblings(tmp_path) == []
    # without renameat2: the second rename fails, the first is undone
    monkeypatch.setattr(staging, "_exchange", lambda a, b: False)
    rename, calls = os.rename, []

    def second_fails(a, b):
        calls.append(a)
        if len(calls) == 2:
            raise OSError(28, "No space left on device (injected)")
        rename(a, b)

    monkeypatch.setattr(staging.os, "rename", second_fails)
    code, err = run(["sweep", new, "--overwrite"], capsys)
    assert code == 2 and "injected" in err
    monkeypatch.setattr(staging.os, "rename", rename)
    assert load(tmp_path / "out").identical(before) and siblings(tmp_path) == []


def test_read_only_old_store_is_replaced(tmp_path, capsys, two_runs):
    _, new, _, want = two_runs
    zarr_dir = tmp_path / "out" / "results.zarr"
    for folder, _, files in os.walk(zarr_dir, topdown=False):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)
    code, err = run(["sweep", new, "--overwrite"], capsys)
    assert code == 0, err
    assert load(tmp_path / "out").identical(want) and siblings(tmp_path) == []


def test_symlinked_results_zarr_is_replaced_and_its_target_kept(tmp_path, capsys, two_runs):
    _, new, before, want = two_runs
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(tmp_path / "out" / "results.zarr", elsewhere / "results.zarr")
    os.symlink(elsewhere / "results.zarr", tmp_path / "out" / "results.zarr")
    files = sorted(str(p) for p in (elsewhere / "results.zarr").rglob("*"))
    code, err = run(["sweep", new, "--overwrite"], capsys)
    assert code == 0, err
    assert load(tmp_path / "out").identical(want)
    assert not os.path.islink(tmp_path / "out" / "results.zarr")
    assert sorted(str(p) for p in (elsewhere / "results.zarr").rglob("*")) == files


def test_symlinked_output_keeps_its_link(tmp_path, capsys, two_runs):
    _, new, _, want = two_runs
    os.rename(tmp_path / "out", tmp_path / "real")
    os.symlink(tmp_path / "real", tmp_path / "out")
    code, err = run(["sweep", new, "--overwrite"], capsys)
    assert code == 0, err
    assert os.path.islink(tmp_path / "out") and load(tmp_path / "real").identical(want)
    assert siblings(tmp_path) == []


def test_leftovers_are_recognised_and_nothing_else_is_removed(tmp_path, capsys, two_runs):
    old, _, before, _ = two_runs
    ours = [tmp_path / "out.fastsd-new-abcd_123", tmp_path / "out.fastsd-old-zzzzzzzz"]
    for path in ours:
        shutil.copytree(tmp_path / "out", path)
    (ours[1] / "blocks").rename(ours[1] / "manifest.json.tmp")  # any subset of what fastsd writes
    theirs = [
        tmp_path / "out.fastsd-new-abcdefgh9",  # not the name of a staging directory
        tmp_path / "out.fastsd-new-mine1234",  # holds a file fastsd does not write
        tmp_path / "other.fastsd-new-abcdefgh",  # another output's
    ]
    for path in theirs:
        path.mkdir()
        (path / "manifest.json").write_text("{}")
    (theirs[1] / "notes.txt").write_text("mine")
    os.symlink(ours[0], tmp_path / "out.fastsd-old-linklink")
    code, err = run(["sweep", old, "--resume"], capsys)
    assert code == 0, err
    assert siblings(tmp_path) == sorted(
        p.name for p in theirs + [tmp_path / "out.fastsd-old-linklink"]
    )
    # while OUT is missing, a leftover may be the only copy of a run: kept
    shutil.copytree(tmp_path / "out", ours[0])
    os.rename(tmp_path / "out", tmp_path / "moved")
    assert staging.remove_leftovers(str(tmp_path / "out")) == []
    assert ours[0].is_dir()
    assert load(tmp_path / "moved").identical(before)


def test_overwrite_refuses_a_mount_point(tmp_path, capsys):
    if not os.path.ismount("/proc"):  # pragma: no cover - not Linux
        pytest.skip("no mount point to try")
    from fastsd.exceptions import ConfigError
    from fastsd.store.manifest import _check_replaceable

    with pytest.raises(ConfigError, match="mount point"):
        _check_replaceable("/proc")


@pytest.mark.slow
def test_sigkill_mid_overwrite_leaves_the_old_run(tmp_path, capsys):
    """A `fastsd sweep --overwrite` process killed while it builds the new run: the old
    run loads identically; the next --overwrite removes the leftover and completes."""
    old = config(tmp_path, 0, ranks=", ".join(["3"] * 300))  # 300 blocks: one per problem
    new = config(tmp_path, 1, ranks=", ".join(["3"] * 300))
    assert run(["sweep", old], capsys)[0] == 0
    before = load(tmp_path / "out")
    assert run(["sweep", new, "--output", tmp_path / "ref"], capsys)[0] == 0
    want = load(tmp_path / "ref")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for wait_for in (1, 60, 180):  # blocks stored in the new run before the kill
        earlier = set(tmp_path.glob("out.fastsd-new-*"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastsd", "sweep", str(new), "--overwrite", "--no-progress"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            stores = [p / "blocks" for p in set(tmp_path.glob("out.fastsd-new-*")) - earlier]
            if stores and stores[0].is_dir() and len(os.listdir(stores[0])) >= wait_for:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, "the overwrite finished before the kill"
        assert load(tmp_path / "out").identical(before)
        assert len(set(tmp_path.glob("out.fastsd-new-*")) - earlier) == 1
    assert len(siblings(tmp_path)) == 1  # each run removed the leftover of the one before
    code, err = run(["sweep", new, "--overwrite"], capsys)
    assert code == 0, err
    assert load(tmp_path / "out").identical(want) and siblings(tmp_path) == []
