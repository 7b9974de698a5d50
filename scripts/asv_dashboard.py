#!/usr/bin/env python
"""Build fastsd's asv dashboard over commits of main and check it in headless Chromium.

Steps (everything under ``--out``; the checkout is written to only with ``--results``):

1. clone the repository and take the last ``--commits`` first-parent commits of ``--rev``
   (``--all``: every first-parent commit of ``--rev``, default ``main``, since the asv
   suite landed, i.e. since the first commit with ``asv.conf.json``, or since ``--since``;
   ``--paths``: only those that change the given paths; ``--steps N``: N of them, spread);
2. copy the benchmark suite (``asv.conf.json`` and ``benchmarks/``; ``--history``: only
   the published history's modules) from the *working tree*, so the current suite runs
   against every historical commit (commits from before an API existed show "n/a" for
   its benchmarks);
3. run it on every commit: ``--mode existing`` (default) runs in this
   interpreter's environment with the commit's source first on the path
   (``ASV_PYTHONPATH``, ``asv run -E existing --set-commit-hash``: no network,
   no builds; an editable install of fastsd cannot fill in modules the commit
   lacks); ``--mode virtualenv`` lets asv build and install each commit in its
   own virtualenv, as ``asv run`` does (needs PyPI); with ``--skip-existing``
   the results already in ``--out`` are kept and only the commits without any
   are run (incremental updates of one dashboard);
4. ``asv publish``; check that every benchmark that ran has a graph with data
   and that some have points at two or more commits (``--min-commits N``: that
   each headline graph has points at N or more);
5. serve the HTML on 127.0.0.1, open it in headless Chromium (Debian's
   ``chromium``), check that the benchmark grid and the graphs of the main
   benchmarks render (flot canvases), and save screenshots in ``--out``.

The published history (``benchmarks/results``, see the user guide's "Benchmarks"
page): ``--results DIR`` copies the stored result files in before step 3, runs no
commit that has some, and copies each new commit's results back as soon as it
has run; ``--since last`` starts after the newest stored commit;
``--publish-only`` runs nothing and publishes the stored results (CI).

asv's HTML loads jQuery, flot and Bootstrap from public CDNs. Where those
cannot be reached (``--assets auto`` probes them; ``--assets npm`` always) the
same library versions are fetched once from the npm registry (``npm pack``) into
``--out``/vendor and the published ``index.html`` is rewritten to use them.
``--localize-html DIR`` does only that to an existing ``asv publish`` output
(e.g. ``.asv/html``), so ``asv preview`` works offline.

Usage::

    python scripts/asv_dashboard.py --reduced           # smoke subset, ~5 min for 2 commits
    python scripts/asv_dashboard.py --commits 5         # full suite, 5 commits
    python scripts/asv_dashboard.py --history --since last --paths fastsd \\
        --machine shared-2core-epyc --results benchmarks/results     # add new commits
    python scripts/asv_dashboard.py --publish-only --history --results benchmarks/results
    python scripts/asv_dashboard.py --all --reduced --out ~/fastsd-asv --skip-existing
    python scripts/asv_dashboard.py --localize-html .asv/html

Exit status: 0 when every check passed (or Chromium is missing: the browser
checks are then skipped with a message, unless ``--require-browser``), 1 when
a check failed, 2 on a usage or environment error.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import itertools
import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Benchmarks whose graphs are opened in the browser (and screenshotted): the
#: published history's headline graphs (W1, W2, decompose vs the limit, accuracy
#: vs mpmath), then the older suite's, for runs without --history.
GRAPHS = [
    "history.W1FixedXi.track_cells_per_second",
    "history.W1FixedXi.time_sweep_risk",
    "history.W2OptimalXi.time_sweep_optimal",
    "history.DecomposeLimit.track_fraction_of_limit",
    "accuracy.OptimalRiskHighPrecision.track_max_rel_error",
    "sweeps.SweepRisk.time_sweep_risk",
    "decomposition.Decompose.time_decompose",
]

#: Written into --out/site and put first on the path of every benchmark process
#: (--mode existing): an editable install of fastsd adds a finder that fills in,
#: from the working tree, any fastsd module the commit under test lacks; drop it,
#: so that a commit's benchmarks import that commit's modules or fail.
SITECUSTOMIZE = """\
import sys

sys.meta_path[:] = [
    f for f in sys.meta_path
    if not getattr(f, "__module__", "").startswith("__editable___fastsd")
]
"""

#: asv's CDN assets -> (npm package spec, file inside the package tarball).
#: Same versions as asv's index.html (stupidtable: 1.0.1 is not on npm; 1.1.3).
CDN_ASSETS = [
    (r"code\.jquery\.com/jquery-3\.3\.1\.min\.js", "jquery@3.3.1", "dist/jquery.min.js"),
    (r"flot/0\.8\.3/jquery\.flot\.min\.js", "flot@0.8.3", "jquery.flot.js"),
    (r"flot/0\.8\.3/jquery\.flot\.time\.min\.js", "flot@0.8.3", "jquery.flot.time.js"),
    (r"flot/0\.8\.3/jquery\.flot\.selection\.min\.js", "flot@0.8.3", "jquery.flot.selection.js"),
    (r"flot/0\.8\.3/jquery\.flot\.categories\.min\.js", "flot@0.8.3", "jquery.flot.categories.js"),
    (
        r"flot-orderbars@1\.0\.0/js/jquery\.flot\.orderBars\.js",
        "flot-orderbars@1.0.0",
        "js/jquery.flot.orderBars.js",
    ),
    (r"stupidtable/[\d.]+/stupidtable\.min\.js", "stupid-table-plugin@1.1.3", "stupidtable.min.js"),
    (r"blueimp-md5/2\.19\.0/js/md5\.min\.js", "blueimp-md5@2.19.0", "js/md5.min.js"),
    (
        r"bootstrap@3\.1\.1/dist/js/bootstrap\.min\.js",
        "bootstrap@3.1.1",
        "dist/js/bootstrap.min.js",
    ),
    (
        r"bootstrap@3\.1\.1/dist/css/bootstrap\.min\.css",
        "bootstrap@3.1.1",
        "dist/css/bootstrap.min.css",
    ),
]

CHROMIUM_NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--window-size=1400,900",
]


class CheckFailed(Exception):
    """A dashboard check failed (exit status 1)."""


def log(msg):
    print(f"[asv_dashboard] {msg}", flush=True)


def run(cmd, *, cwd=None, env=None, check=True, capture=False, timeout=None):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        check=check,
        text=True,
        capture_output=capture,
        timeout=timeout,
    )


def git(repo, *args):
    return run(["git", "-C", repo, *args], capture=True).stdout.strip()


# ---------------------------------------------------------------- asv steps


def suite_list(name):
    """A list constant of ``benchmarks.common`` (SMOKE_BENCH, HISTORY_BENCH, HISTORY_MODULES)."""
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import common
    finally:
        sys.path.pop(0)
    return list(getattr(common, name))


def suite_first_commit(repo, rev):
    """The first first-parent commit of ``rev`` that has ``asv.conf.json`` (the suite landed)."""
    first = git(
        repo, "log", "--first-parent", "--reverse", "--format=%H", rev, "--", "asv.conf.json"
    ).split()
    if not first:
        raise CheckFailed(f"no commit reachable from {rev} has asv.conf.json")
    return first[0]


def select_commits(repo, rev, count=None, since=None, paths=()):
    """First-parent commits of ``rev``, oldest first.

    ``count``: the last ``count`` of them; ``None``: every commit from ``since``
    (inclusive; default: the commit where the asv suite landed) to ``rev``.
    ``paths``: only the commits whose diff against their first parent touches
    one of them (``since`` itself is kept).
    """
    limit = ["--", *paths] if paths else []
    if count is not None:
        shas = git(repo, "rev-list", "--first-parent", "-n", str(count), rev, *limit).split()
    else:
        start = (
            git(repo, "rev-parse", "--verify", f"{since}^{{commit}}")
            if since
            else suite_first_commit(repo, rev)
        )
        if subprocess.run(
            ["git", "-C", str(repo), "merge-base", "--is-ancestor", start, rev], capture_output=True
        ).returncode:
            raise CheckFailed(f"--since {since or start} is not an ancestor of {rev}")
        shas = git(repo, "rev-list", "--first-parent", f"{start}..{rev}", *limit).split()
        shas.append(start)
    shas.reverse()  # oldest first
    return shas


def spread(shas, steps):
    """``steps`` of ``shas`` spread evenly, the first and the last included (asv run --steps)."""
    if steps >= len(shas):
        return list(shas)
    if steps == 1:
        return [shas[-1]]
    return [shas[round(i * (len(shas) - 1) / (steps - 1))] for i in range(steps)]


def commits_with_results(results, shas):
    """The commits in ``shas`` that already have a result file under ``results``."""
    have = set()
    for path in Path(results).glob("*/*.json"):
        if path.name in ("machine.json", "benchmarks.json"):
            continue
        prefix = path.name.split("-", 1)[0]
        have.update(sha for sha in shas if sha.startswith(prefix))
    return [sha for sha in shas if sha in have]


def last_stored_commit(repo, rev, results):
    """The newest first-parent commit of ``rev`` with a result file under ``results``."""
    shas = git(repo, "rev-list", "--first-parent", rev).split()  # newest first
    stored = commits_with_results(results, shas)
    if not stored:
        raise CheckFailed(
            f"--since last: no first-parent commit of {rev} has results in {results} "
            "(start the history with --all --since COMMIT)"
        )
    return stored[0]


def seed_results(stored, results):
    """Copy the stored result files (every machine's, not benchmarks.json) into ``results``."""
    if not Path(stored).is_dir():
        raise CheckFailed(f"--results {stored} is not a directory")
    shutil.copytree(
        stored, results, dirs_exist_ok=True, ignore=shutil.ignore_patterns("benchmarks.json")
    )


def python_version(python):
    """'3.11' for the interpreter ``python``."""
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    return run([python, "-c", code], capture=True).stdout.strip()


def normalize_env_names(results, version):
    """Name the environment of ``-E existing`` results by Python version, not interpreter path.

    asv names such an environment, and sets its ``python`` graph parameter, by the
    interpreter's path (``existing-py_work_x_.venv_bin_python``): results of one
    machine run from two checkouts would be two series. ``version`` (``3.11``,
    of that interpreter) is what the series means.
    """
    for path in sorted(Path(results).glob("*/*-existing-py_*.json")):
        with open(path) as f:
            data = json.load(f)
        data["python"] = data["params"]["python"] = version
        data["env_name"] = f"existing-py{version}"
        target = path.with_name(f"{path.name.split('-', 1)[0]}-existing-py{version}.json")
        with open(target, "w") as f:
            json.dump(data, f, indent=4, sort_keys=True)
        if target != path:
            path.unlink()


def store_results(results, stored, shas):
    """Copy the result files of ``shas`` (and their machine.json) from ``results`` to ``stored``."""
    copied = []
    for path in sorted(Path(results).glob("*/*.json")):
        prefix = path.name.split("-", 1)[0]
        if path.name == "machine.json" or not any(sha.startswith(prefix) for sha in shas):
            continue
        target = Path(stored) / path.parent.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path.parent / "machine.json", target / "machine.json")
        shutil.copyfile(path, target / path.name)
        copied.append(target / path.name)
    log(f"stored {len(copied)} result file(s) in {stored}")
    return copied


def copy_suite(repo, suite, modules=None):
    """Copy ``benchmarks/`` of the working tree to ``suite``/benchmarks.

    ``modules``: only ``__init__``, ``common`` and these modules (the published
    history's: the other modules may not import on old commits).
    """
    source = Path(repo) / "benchmarks"
    if modules is None:
        shutil.copytree(source, suite / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
        return
    (suite / "benchmarks").mkdir(parents=True)
    for name in ["__init__", "common", *modules]:
        shutil.copyfile(source / f"{name}.py", suite / "benchmarks" / f"{name}.py")


def prepare(args, out):
    """Clone, pick commits, copy the suite, write the asv config. Returns (conf, clone, shas)."""
    clone = out / "repo"
    if clone.exists():
        shutil.rmtree(clone)
    run(["git", "clone", "--quiet", "--no-hardlinks", args.repo, clone])
    rev = git(args.repo, "rev-parse", "--verify", f"{args.rev}^{{commit}}")
    if args.publish_only:
        shas = [rev]
    else:
        since = args.since
        if since == "last":
            since = last_stored_commit(clone, rev, args.results)
            log(f"--since last: {since[:8]}, the newest commit with stored results")
        shas = select_commits(
            clone, rev, None if args.all else args.commits, since, args.paths or ()
        )
        if args.steps:
            shas = spread(shas, args.steps)
        if len(shas) < 2:
            log(f"warning: only {len(shas)} commit(s) selected from {args.rev}")
    git(clone, "branch", "-f", "asv-dashboard", rev)
    git(clone, "checkout", "--quiet", "asv-dashboard")

    suite = out / "suite"
    if suite.exists():
        shutil.rmtree(suite)
    copy_suite(args.repo, suite, suite_list("HISTORY_MODULES") if args.history else None)
    with open(Path(args.repo) / "asv.conf.json") as f:
        conf = json.load(f)
    conf.update(
        repo=str(clone),
        branches=["asv-dashboard"],
        benchmark_dir=str(suite / "benchmarks"),
        env_dir=str(out / "env"),
        results_dir=str(out / "results"),
        html_dir=str(out / "html"),
    )
    conf_path = suite / "asv.conf.json"
    with open(conf_path, "w") as f:
        json.dump(conf, f, indent=2)
    return conf_path, clone, shas


def asv_cmd(python):
    return [python, "-m", "asv"]


def existing_env(args, out, src):
    """Environment of an ``asv run -E existing`` on the source in ``src`` (the site guard first)."""
    site = out / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = f"{site}{os.pathsep}{src}"
    where = run(
        [args.python, "-c", "import fastsd; print(fastsd.__file__)"],
        env=dict(os.environ, PYTHONPATH=path),
        capture=True,
        cwd=out,
    ).stdout.strip()  # (not the caller's cwd: it is on sys.path)
    if not where.startswith(str(src)):
        raise CheckFailed(f"fastsd imports from {where}, not {src}")
    return dict(os.environ, ASV_PYTHONPATH=path), where


def keep_selected(path, selection):
    """Drop the benchmarks that ``selection`` does not select from benchmarks.json.

    The history's modules hold a few benchmarks that are not part of it: without
    results, they would be empty graphs on the published dashboard.
    """
    with open(path) as f:
        bench = json.load(f)
    keep = set(benchmark_names(path.parent.parent, selection))
    dropped = sorted(n for n in bench if n != "version" and n not in keep)
    for name in dropped:
        del bench[name]
    with open(path, "w") as f:
        json.dump(bench, f, indent=4, sort_keys=True)
    if dropped:
        log("not in the published history: " + ", ".join(dropped))


#: The fields of asv's machine description that are graph parameters.
MACHINE_FIELDS = ("os", "arch", "cpu", "num_cpu", "ram")


def stored_machine(args):
    """``asv machine`` options that repeat the stored description of ``--machine``.

    Every field is a graph parameter: a field asv detects differently in a later
    session (the kernel version in ``os``) would start a new series. The stored
    description is kept unless the number of CPUs differs (another kind of machine).
    """
    path = Path(args.results or "") / (args.machine or "") / "machine.json"
    if not (args.results and args.machine and path.is_file()):
        return []
    with open(path) as f:
        desc = json.load(f)
    if desc.get("num_cpu") != str(os.cpu_count()):
        raise CheckFailed(
            f"--machine {args.machine} has {desc.get('num_cpu')} CPUs in {path}, this one "
            f"{os.cpu_count()}: give this kind of machine its own --machine name"
        )
    return [f"--{key}={desc[key]}" for key in MACHINE_FIELDS if key in desc]


def run_suite(args, conf_path, clone, shas, out):
    """asv run on ``shas`` (none with --publish-only: only discovery), then asv publish.

    Returns ({sha: asv run's exit status}, the commits that were run).
    """
    asv = asv_cmd(args.python)
    cwd = conf_path.parent
    machine = ["--machine", args.machine] if args.machine else []
    run([*asv, "machine", "--yes", *machine, *stored_machine(args), "--config", conf_path], cwd=cwd)
    bench = [b for regex in args.bench for b in ("--bench", regex)]
    extra = [a for attr in args.attribute for a in ("-a", attr)]
    if args.reduced:
        extra += ["-a", "processes=1", "-a", "repeat=3"]
    rcs = {}
    if args.skip_existing or args.results:
        done = commits_with_results(out / "results", shas)
        if done:
            log(
                f"{len(done)} of {len(shas)} commits already have results: "
                + " ".join(sha[:8] for sha in done)
            )
        shas = [sha for sha in shas if sha not in done]
    version = python_version(args.python)
    src = out / "src"
    if args.mode == "existing" or args.publish_only:
        if src.exists():
            shutil.rmtree(src)
        run(["git", "clone", "--quiet", clone, src])
    if args.publish_only:
        # benchmarks.json (the suite's description) for publish; nothing runs
        env, _ = existing_env(args, out, src)
        head = git(clone, "rev-parse", "HEAD")
        run(
            [*asv, "run", "--config", conf_path, "-E", f"existing:{args.python}"]
            + ["--set-commit-hash", head, "--bench", "just-discover", *machine],
            cwd=cwd,
            env=env,
        )
        shas = []
    elif not shas:
        log("no commit to run")
    elif args.mode == "virtualenv":
        hashfile = out / "hashes.txt"
        hashfile.write_text("\n".join(shas) + "\n")
        proc = run(
            [*asv, "run", "--config", conf_path, f"HASHFILE:{hashfile}", *bench, *extra, *machine],
            cwd=cwd,
            check=False,
        )
        rcs = {sha: proc.returncode for sha in shas}
    else:  # --mode existing
        for sha in shas:
            git(src, "checkout", "--quiet", "--detach", sha)
            env, where = existing_env(args, out, src)
            log(f"commit {sha[:8]}: fastsd from {where}")
            proc = run(
                [*asv, "run", "--config", conf_path, "-E", f"existing:{args.python}"]
                + ["--set-commit-hash", sha, *bench, *extra, *machine],
                cwd=cwd,
                env=env,
                check=False,
            )
            rcs[sha] = proc.returncode
            normalize_env_names(out / "results", version)
            if args.results:  # as it goes: a run stopped midway keeps what it measured
                store_results(out / "results", args.results, [sha])
    normalize_env_names(out / "results", version)
    if args.history:
        keep_selected(out / "results" / "benchmarks.json", args.bench)
    run([*asv, "publish", "--config", conf_path], cwd=cwd)
    return rcs, shas


# ------------------------------------------------------------ graph checks


def _has_value(v):
    if isinstance(v, list):
        return any(_has_value(x) for x in v)
    return v is not None


def results_with_data(results):
    """Names of the benchmarks with at least one result (not skipped) at some commit."""
    names = set()
    for path in results.glob("*/*.json"):
        if path.name == "machine.json":
            continue
        with open(path) as f:
            data = json.load(f)
        for name, row in data.get("results", {}).items():
            if row and _has_value(row[0]):
                names.add(name)
    return names


def check_graphs(html, expected_names):
    """Every benchmark that produced a result has graph data; {name: commits with data}."""
    graphs = html / "graphs"
    if not graphs.is_dir():
        raise CheckFailed(f"asv publish wrote no graphs under {graphs}")
    points = {}
    for path in graphs.rglob("*.json"):
        if path.parent == graphs / "summary" or path.name == "summary.json":
            continue  # per-benchmark summaries and the summary list
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, list):
            continue
        revs = {row[0] for row in data if _has_value(row[1])}
        points.setdefault(path.stem, set()).update(revs)
    missing = [n for n in expected_names if not points.get(n)]
    if missing:
        raise CheckFailed("no graph data for: " + ", ".join(missing))
    return {name: len(points[name]) for name in expected_names}


def benchmark_names(out, selection):
    """Names of the benchmarks asv discovered (benchmarks.json), filtered by ``selection``."""
    with open(out / "results" / "benchmarks.json") as f:
        bench = json.load(f)
    names = [n for n in bench if n != "version"]
    if not selection:
        return sorted(names)

    def selected(name):
        params = bench[name].get("params") or []
        combos = [f"{name}({', '.join(ps)})" for ps in itertools.product(*params)]
        return any(re.search(r, c) for r in selection for c in combos or [name])

    return sorted(n for n in names if selected(n))


# ------------------------------------------------------------ offline assets


def cdn_reachable(timeout=5):
    try:
        urllib.request.urlopen(
            urllib.request.Request("https://code.jquery.com/jquery-3.3.1.min.js", method="HEAD"),
            timeout=timeout,
        )
        return True
    except Exception:
        return False


def fetch_vendor(vendor):
    """npm pack the CDN libraries into ``vendor`` (once); {npm spec: extracted dir}."""
    vendor.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    specs = sorted({spec for _, spec, _ in CDN_ASSETS})
    dirs = {}
    for spec in specs:
        target = vendor / spec.replace("/", "_")
        if not (target / "package").is_dir():
            if npm is None:
                raise CheckFailed(
                    "asv's CDNs are unreachable and npm is not installed to fetch "
                    f"{spec}; install npm (apt-get install npm) or use --assets cdn"
                )
            tmp = Path(tempfile.mkdtemp(dir=vendor))
            out = run([npm, "pack", "--silent", spec], cwd=tmp, capture=True, timeout=300)
            tgz = tmp / out.stdout.strip().splitlines()[-1]
            target.mkdir(exist_ok=True)
            with tarfile.open(tgz) as tar:
                tar.extractall(target, filter="data")
            shutil.rmtree(tmp)
        dirs[spec] = target / "package"
    return dirs


def localize_html(html, vendor):
    """Rewrite html/index.html to load asv's CDN libraries from html/vendor/."""
    dirs = fetch_vendor(vendor)
    index = html / "index.html"
    text = index.read_text()
    local = html / "vendor"
    local.mkdir(exist_ok=True)

    def replace(match):
        tag = match.group(0)
        url = re.search(r'(?:src|href)="(https://[^"]+)"', tag)
        if url is None:
            return tag
        for pattern, spec, member in CDN_ASSETS:
            if re.search(pattern, url.group(1)):
                name = f"{spec.split('@')[0]}-{Path(member).name}"
                shutil.copyfile(dirs[spec] / member, local / name)
                tag = tag.replace(url.group(1), f"vendor/{name}")
                return re.sub(r'\s(integrity|crossorigin|referrerpolicy)="[^"]*"', "", tag)
        raise CheckFailed(f"no offline copy known for {url.group(1)}")

    text = re.sub(r"<(script|link)\b[^>]*>", replace, text)
    index.write_text(text)
    log(f"{index}: CDN libraries replaced by local copies in {local}")


# ------------------------------------------------------------ browser checks


def find_chromium(explicit=None):
    if explicit:
        return explicit if shutil.which(explicit) or Path(explicit).exists() else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory):
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def chromium(browser, url, profile, *, dump=False, screenshot=None, budget_ms=20000):
    cmd = [
        browser,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
    ]
    if dump:
        cmd.append("--dump-dom")
    if screenshot:
        cmd.append(f"--screenshot={screenshot}")
    cmd.append(url)
    proc = run(cmd, capture=True, timeout=180, check=False)
    if proc.returncode != 0:
        raise CheckFailed(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def check_browser(browser, html, out, names):
    server, base = serve(html)
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=out))
    shots = []
    try:
        dom = chromium(browser, base, profile, dump=True)
        if "external (JavaScript) dependencies" in dom:
            raise CheckFailed("asv's JavaScript libraries did not load (try --assets npm)")
        if "Error fetching content" in dom:
            raise CheckFailed("the dashboard could not fetch its JSON data")
        if 'id="summarygrid-display"' not in dom:
            raise CheckFailed("the dashboard index did not load")
        absent = [n for n in names if n not in dom]
        if absent:
            raise CheckFailed("benchmark grid lacks: " + ", ".join(absent[:10]))
        log(f"benchmark grid: all {len(names)} benchmarks listed")
        shot = out / "dashboard_index.png"
        chromium(browser, base, profile, screenshot=shot)
        shots.append(shot)
        for name in GRAPHS:
            if name not in names:
                continue
            url = f"{base}#{name}"
            dom = chromium(browser, url, profile, dump=True)
            main = dom.split('id="main-graph"', 1)
            if len(main) < 2 or "flot-base" not in main[1]:
                raise CheckFailed(f"graph of {name} did not render (no flot canvas)")
            shot = out / f"graph_{name}.png"
            chromium(browser, url, profile, screenshot=shot)
            shots.append(shot)
            log(f"graph renders: {name}")
    finally:
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    for shot in shots:
        if not shot.exists() or shot.stat().st_size < 1000:
            raise CheckFailed(f"screenshot missing or empty: {shot}")
    return shots


# ------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", default=str(ROOT), help="git repository (default: this one)")
    p.add_argument(
        "--rev",
        default=None,
        help="newest commit (default: main with --all, --since or --publish-only, else HEAD; "
        "the stored history is main's first-parent commits)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--commits", type=int, default=None, help="number of commits, newest first (default: 2)"
    )
    which.add_argument(
        "--all", action="store_true", help="every first-parent commit since the asv suite landed"
    )
    which.add_argument(
        "--publish-only",
        action="store_true",
        help="run no commit: publish the --results already stored (needs --results)",
    )
    p.add_argument(
        "--since",
        metavar="COMMIT",
        help="every first-parent commit from COMMIT on (implies --all); 'last': the newest "
        "commit with results in --results, i.e. only the commits added since",
    )
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep the results already in --out and run only commits without any",
    )
    p.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="only N of the selected commits, spread evenly (as asv run --steps)",
    )
    p.add_argument(
        "--paths",
        action="append",
        metavar="PATH",
        help="only commits that change PATH (repeatable; e.g. fastsd: the package's code)",
    )
    p.add_argument("--out", help="output directory (default: a new temporary directory)")
    p.add_argument(
        "--results",
        metavar="DIR",
        help="stored results (e.g. benchmarks/results): copied in first, commits that have "
        "some are not run again, and the new commits' results are copied back",
    )
    p.add_argument(
        "--machine",
        help="asv machine name (default: asv's, the host name); the stored history's is "
        "in benchmarks/results",
    )
    p.add_argument("--mode", choices=["existing", "virtualenv"], default="existing")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter with asv, fastsd's dependencies (and mpmath)",
    )
    p.add_argument(
        "--reduced",
        action="store_true",
        help="only the smoke subset (benchmarks.common.SMOKE_BENCH), 3 repeats",
    )
    p.add_argument(
        "--history",
        action="store_true",
        help="only the published history's benchmarks (benchmarks.common.HISTORY_BENCH)",
    )
    p.add_argument("--bench", action="append", default=[], help="asv --bench regex (repeatable)")
    p.add_argument(
        "--attribute",
        "-a",
        action="append",
        default=[],
        help="asv -a attribute override (repeatable)",
    )
    p.add_argument(
        "--min-commits",
        type=int,
        default=0,
        metavar="N",
        help="fail unless each headline graph (GRAPHS) that has data has it at >= N commits",
    )
    p.add_argument(
        "--assets",
        choices=["auto", "cdn", "npm"],
        default="auto",
        help="where the dashboard's JS libraries come from (default: auto)",
    )
    p.add_argument("--chromium", help="browser executable (default: chromium on PATH)")
    p.add_argument("--no-browser", action="store_true", help="skip the Chromium checks")
    p.add_argument(
        "--require-browser",
        action="store_true",
        help="fail (instead of skipping) when Chromium is missing",
    )
    p.add_argument(
        "--localize-html",
        metavar="DIR",
        help="only rewrite a published asv HTML dir to local JS libraries",
    )
    args = p.parse_args(argv)
    if args.since:
        if args.commits is not None or args.publish_only:
            p.error("--since selects the commits: not with --commits or --publish-only")
        args.all = True
    if args.since == "last" and not args.results:
        p.error("--since last needs --results (the directory holding the stored history)")
    if args.publish_only and not args.results:
        p.error("--publish-only needs --results (the stored results to publish)")
    if args.skip_existing and not (args.out or args.results):
        p.error("--skip-existing needs --out or --results (where the earlier results are)")
    if args.results:
        args.results = str(Path(args.results).resolve())
    if args.commits is None:
        args.commits = 2
    if args.rev is None:
        args.rev = "HEAD"
        if (args.all or args.publish_only) and subprocess.run(
            ["git", "-C", args.repo, "rev-parse", "--verify", "--quiet", "main^{commit}"],
            capture_output=True,
        ).returncode == 0:
            args.rev = "main"
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.localize_html:
        html = Path(args.localize_html).resolve()
        if not (html / "index.html").exists():
            log(f"{html} has no index.html (run asv publish first)")
            return 2
        localize_html(html, html.parent / "vendor-cache")
        return 0
    if args.commits < 1:
        log("--commits must be >= 1")
        return 2
    if subprocess.run([args.python, "-c", "import asv"], capture_output=True).returncode:
        log(f"asv is not installed for {args.python} (pip install asv mpmath)")
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="fastsd-asv-dashboard-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log(f"output directory: {out}")
    if args.reduced:
        args.bench = args.bench + suite_list("SMOKE_BENCH")
    if args.history:
        args.bench = args.bench + suite_list("HISTORY_BENCH")
    start = time.time()
    try:
        conf, clone, shas = prepare(args, out)
        if args.results:
            seed_results(args.results, out / "results")
        log(
            ("stored results only; suite discovered at " if args.publish_only else "commits: ")
            + " ".join(s[:8] for s in shas)
        )
        rcs, ran = run_suite(args, conf, clone, shas, out)
        if args.results and ran and args.mode == "virtualenv":
            store_results(out / "results", args.results, ran)
        html = out / "html"
        selected = benchmark_names(out, args.bench)
        names = sorted(results_with_data(out / "results") & set(selected))
        for name in sorted(set(selected) - set(names)):
            log(f"  {name}: skipped at every commit (n/a), no graph")
        if not names:
            raise CheckFailed("no benchmark produced a result")
        counts = check_graphs(html, names)
        width = max(map(len, names))
        for name in names:
            log(f"  {name:<{width}}  data at {counts[name]} commit(s)")
        if len(shas) >= 2 and max(counts.values()) < 2:
            raise CheckFailed("no benchmark has results at two commits")
        few = {n: counts[n] for n in GRAPHS if n in counts and counts[n] < args.min_commits}
        if few:
            raise CheckFailed(f"graphs with data at fewer than {args.min_commits} commits: {few}")
        failed = {s[:8]: rc for s, rc in rcs.items() if rc}
        if failed:
            # a commit from before an API existed skips (n/a); a failure is real
            raise CheckFailed(f"asv run reported failed benchmarks at {failed}")

        browser = None if args.no_browser else find_chromium(args.chromium)
        if browser is None:
            msg = "SKIPPED browser checks: " + (
                "--no-browser"
                if args.no_browser
                else "chromium not found (apt-get install -y chromium)"
            )
            log(msg)
            if args.require_browser and not args.no_browser:
                return 1
        else:
            if args.assets == "npm" or (args.assets == "auto" and not cdn_reachable()):
                localize_html(html, out / "vendor")
            shots = check_browser(browser, html, out, names)
            log("screenshots: " + ", ".join(str(s) for s in shots))
    except CheckFailed as exc:
        log(f"FAILED: {exc}")
        return 1
    except subprocess.CalledProcessError as exc:
        log(f"FAILED: {exc}\n{exc.stderr or ''}")
        return 1
    log(
        f"OK in {time.time() - start:.0f} s; dashboard: {out / 'html' / 'index.html'} "
        f"(asv preview --config {out / 'suite' / 'asv.conf.json'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
