"""Argument handling and commit selection of scripts/asv_dashboard.py (no asv run).

``--all`` selects every first-parent commit since the asv suite landed (the first
commit with asv.conf.json) or since ``--since``; ``--skip-existing`` keeps the
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
    for bad in (["--all", "--commits", "3"], ["--since", "HEAD"], ["--skip-existing"]):
        with pytest.raises(SystemExit) as exc:
            dash.parse_args(["--repo", str(path), *bad])
        assert exc.value.code == 2
