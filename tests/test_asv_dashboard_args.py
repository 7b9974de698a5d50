"""Argument handling and commit selection of scripts/asv_dashboard.py (no asv run).

``--all`` selects every first-parent commit since the asv suite landed (the first
commit with asv.conf.json) or since ``--since``; ``--since last`` starts at the
newest commit with stored results (``--results``); ``--skip-existing`` keeps the
commits that already have results. Checked on a throwaway git repository; well
under a second.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dash():
    spec = importlib.util.spec_from_file_location(
        "asv_dashboard", ROOT / "scripts" / "asv_dashboard.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """main: c0 (no suite), c1 (asv.conf.json lands), c2, merge of a side branch, c4."""
    path = tmp_path_factory.mktemp("repo")
    _git(path, "init", "--quiet", "-b", "main")
    _git(path, "config", "user.email", "t@example.org")
    _git(path, "config", "user.name", "t")
    shas = {}

    def commit(name, files):
        for fname, text in files.items():
            (path / fname).write_text(text)
        _git(path, "add", "-A")
        _git(path, "commit", "--quiet", "-m", name)
        shas[name] = _git(path, "rev-parse", "HEAD")

    commit("c0", {"a.txt": "0"})
    commit("c1", {"asv.conf.json": "{}"})
    commit("c2", {"a.txt": "2"})
    _git(path, "checkout", "--quiet", "-b", "side")
    commit("s1", {"b.txt": "1"})
    _git(path, "checkout", "--quiet", "main")
    _git(path, "merge", "--quiet", "--no-ff", "-m", "c3", "side")
    shas["c3"] = _git(path, "rev-parse", "HEAD")
    commit("c4", {"a.txt": "4"})
    return path, shas


def test_all_starts_where_the_suite_landed(dash, repo):
    path, s = repo
    got = dash.select_commits(path, s["c4"])
    assert got == [s["c1"], s["c2"], s["c3"], s["c4"]]  # oldest first, first parent only
    assert dash.select_commits(path, s["c4"], since=s["c2"]) == [s["c2"], s["c3"], s["c4"]]
    assert dash.select_commits(path, s["c4"], count=2) == [s["c3"], s["c4"]]


def test_since_must_be_an_ancestor(dash, repo):
    path, s = repo
    with pytest.raises(dash.CheckFailed, match="not an ancestor"):
        dash.select_commits(path, s["c2"], since=s["c4"])


def test_no_suite_is_an_error(dash, repo):
    path, s = repo
    with pytest.raises(dash.CheckFailed, match="asv.conf.json"):
        dash.select_commits(path, s["c0"])


def test_commits_with_results(dash, repo, tmp_path):
    _, s = repo
    machine = tmp_path / "results" / "box"
    machine.mkdir(parents=True)
    for name in ("machine.json", "benchmarks.json"):
        (machine / name).write_text("{}")
    (machine / f"{s['c2'][:8]}-existing-py_python3.json").write_text(json.dumps({}))
    shas = [s["c1"], s["c2"], s["c3"]]
    assert dash.commits_with_results(tmp_path / "results", shas) == [s["c2"]]
    assert dash.commits_with_results(tmp_path / "nothing", shas) == []


def test_parse_args(dash, repo):
    path, _ = repo
    args = dash.parse_args(["--repo", str(path), "--all"])
    assert args.all and args.rev == "main"
    args = dash.parse_args(["--repo", str(path)])
    assert not args.all and args.commits == 2 and args.rev == "HEAD"
    args = dash.parse_args(
        ["--repo", str(path), "--all", "--rev", "side", "--out", "x", "--skip-existing"]
    )
    assert args.rev == "side" and args.skip_existing
    args = dash.parse_args(["--repo", str(path), "--since", "HEAD"])
    assert args.all and args.since == "HEAD"  # --since implies --all
    args = dash.parse_args(["--repo", str(path), "--since", "last", "--results", "r"])
    assert args.all and Path(args.results).is_absolute()
    args = dash.parse_args(["--repo", str(path), "--publish-only", "--results", "r"])
    assert args.publish_only and not args.all and args.rev == "main"
    for bad in (
        ["--all", "--commits", "3"],
        ["--since", "HEAD", "--commits", "3"],
        ["--since", "last"],  # needs --results
        ["--publish-only"],  # needs --results
        ["--publish-only", "--all", "--results", "r"],
        ["--skip-existing"],
    ):
        with pytest.raises(SystemExit) as exc:
            dash.parse_args(["--repo", str(path), *bad])
        assert exc.value.code == 2


def _result_file(results, machine, sha):
    folder = results / machine
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "machine.json").write_text(json.dumps({"machine": machine}))
    path = folder / f"{sha[:8]}-existing-py_python3.json"
    path.write_text(json.dumps({"commit_hash": sha}))
    return path


def test_since_last_starts_after_the_newest_stored_commit(dash, repo, tmp_path):
    path, s = repo
    stored = tmp_path / "stored"
    for name in ("c1", "c2"):
        _result_file(stored, "box", s[name])
    last = dash.last_stored_commit(path, s["c4"], stored)
    assert last == s["c2"]
    shas = dash.select_commits(path, s["c4"], since=last)
    assert dash.commits_with_results(stored, shas) == [s["c2"]]  # run: c3 and c4
    with pytest.raises(dash.CheckFailed, match="no first-parent commit"):
        dash.last_stored_commit(path, s["c4"], tmp_path / "empty")


def test_results_round_trip(dash, repo, tmp_path):
    """Stored results seed a run; only the commits that ran are copied back."""
    _, s = repo
    stored, results = tmp_path / "stored", tmp_path / "results"
    _result_file(stored, "box", s["c1"])
    (stored / "benchmarks.json").write_text("{}")  # regenerated by every run: not seeded
    dash.seed_results(stored, results)
    assert (results / "box" / "machine.json").is_file()
    assert not (results / "benchmarks.json").exists()
    new = _result_file(results, "box", s["c2"])
    _result_file(results, "other", s["c3"])  # not among the commits that ran
    copied = dash.store_results(results, stored, [s["c2"]])
    assert copied == [stored / "box" / new.name]
    assert not (stored / "other").exists()
    assert dash.commits_with_results(stored, [s["c1"], s["c2"], s["c3"]]) == [s["c1"], s["c2"]]


def test_history_suite_copies_only_its_modules(dash, tmp_path):
    modules = dash.suite_list("HISTORY_MODULES")
    dash.copy_suite(ROOT, tmp_path, modules)
    copied = sorted(p.stem for p in (tmp_path / "benchmarks").glob("*.py"))
    assert copied == sorted(["__init__", "common", *modules])


def test_stored_machine_description_is_reused(dash, tmp_path):
    """A later session repeats the stored description (a new kernel would start a new series)."""
    import os

    stored = tmp_path / "stored" / "box"
    stored.mkdir(parents=True)
    desc = {"machine": "box", "os": "Linux 1", "arch": "x86_64", "cpu": "C", "ram": "9"}
    (stored / "machine.json").write_text(json.dumps(dict(desc, num_cpu=str(os.cpu_count()))))
    base = ["--results", str(tmp_path / "stored"), "--publish-only"]
    got = dash.stored_machine(dash.parse_args([*base, "--machine", "box"]))
    assert "--os=Linux 1" in got and f"--num_cpu={os.cpu_count()}" in got
    assert dash.stored_machine(dash.parse_args([*base, "--machine", "new"])) == []
    (stored / "machine.json").write_text(json.dumps(dict(desc, num_cpu="999")))
    with pytest.raises(dash.CheckFailed, match="its own --machine name"):
        dash.stored_machine(dash.parse_args([*base, "--machine", "box"]))
