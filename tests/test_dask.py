"""The Dask executor against a real ``dask scheduler`` and ``dask worker`` processes.

Scheduler and workers are started here on 127.0.0.1 with free ports
(:class:`fastsd.bench.scale.LoopbackCluster`), every wait is bounded, and only
the processes started here are stopped, by PID. Workers write their own
blocks; the Dataset of every Dask run (a worker SIGKILLed at many moments, all
workers lost and the run resumed, the CLI with ``tcp://`` and ``local:2``) is
identical to the in-process run's.
"""

from __future__ import annotations

import functools
import operator
import os
import pickle
import signal
import site
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import fastsd
from fastsd.cli import main
from fastsd.config import run as config_sweep

distributed = pytest.importorskip("distributed")
pytest.importorskip("zarr")
pytest.importorskip("xarray")

from fastsd.bench.scale import LoopbackCluster, scale_run  # noqa: E402
from fastsd.blocks import executors  # noqa: E402
from fastsd.blocks.executors import DaskExecutor, _run_on_worker  # noqa: E402
from fastsd.blocks.plan import block_grid  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

CONFIG = """
[problems]
source = "synthetic"
family = "theorem1_family"
params = {{ ranks = {ranks}, seed = 1 }}
[grid]
lams = {{ start = 1e-3, stop = 1e3, num = {lams} }}
max_steps = 4
[run]
selection = "oracle"
output = "{output}"
block = 1
"""

#: 14 problems x 9 lambdas, one problem per block: 14 blocks.
SMALL = dict(ranks=[2, 3, 4, 5, 6, 7, 8, 2, 3, 4, 5, 6, 7, 8], lams=9)
#: 40 problems x 200 lambdas: 40 blocks, long enough to be killed at many moments.
KILL = dict(ranks=[2, 3, 4, 5, 6, 7, 8, 9] * 5, lams=200)


def config(tmp_path, size, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(CONFIG.format(output="out", **size))
    return config_sweep.load_config(path)


def in_process(cfg, out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastsd.IllConditionedXiWarning)
        config_sweep.run_sweep(cfg.with_output(out), progress=False)
    return fastsd.load_sweep(out).to_xarray().load()


def run_dask(cfg, out, client, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastsd.IllConditionedXiWarning)
        config_sweep.run_sweep(cfg.with_output(out), client=client, **kw)
    return fastsd.load_sweep(out).to_xarray().load()


@pytest.fixture(scope="module")
def loopback():
    """(cluster, client): a scheduler and 2 single-threaded workers for the whole module."""
    with LoopbackCluster(2, timeout=120, env=ENV) as cluster:
        with distributed.Client(cluster.address, timeout="120s") as client:
            cluster.wait_for_workers(client, 2)
            yield cluster, client


@pytest.fixture()
def two_workers(loopback):
    """The module's cluster with exactly two live workers (restarted if a test killed one)."""
    cluster, client = loopback
    for name in [n for n, p in cluster.workers.items() if p.poll() is not None]:
        cluster.workers.pop(name)
    while len(cluster.workers) < 2:
        cluster.start_worker()
    cluster.wait_for_workers(client, 2)
    return cluster, client


def _address(client, name):
    for addr, info in client.scheduler_info()["workers"].items():
        if info["name"] == name:
            return addr
    raise LookupError(name)


def test_numba_threads_follow_the_worker_and_the_cli_runs_on_tcp(two_workers, tmp_path):
    cluster, client = two_workers
    import numba

    name = cluster.start_worker(nthreads=2)
    cluster.wait_for_workers(client, 3)
    probe = operator.methodcaller("get_num_threads")
    want = {min(cluster.workers): 1, name: min(2, numba.config.NUMBA_NUM_THREADS)}
    for worker, threads in want.items():
        fut = client.submit(
            _run_on_worker, probe, [numba], pure=False, workers=[_address(client, worker)]
        )
        assert fut.result(timeout=60) == [threads]
    cluster.kill_worker(name)
    cluster.wait_for_workers(client, 2)

    cfg = config(tmp_path, SMALL)
    reference = in_process(cfg, tmp_path / "ref")
    args = ["sweep", str(cfg.path), "--no-progress", "--output", str(tmp_path / "cli")]
    assert main(args + ["--scheduler", cluster.address]) == 0
    assert fastsd.load_sweep(tmp_path / "cli").to_xarray().load().identical(reference)


def test_the_client_receives_records_not_arrays(two_workers, tmp_path, monkeypatch):
    """Workers write their blocks; what comes back is <= 4 KB per block, and no array."""
    _, client = two_workers
    received = []
    original = distributed.Future.result

    def result(self, *args, **kwargs):
        value = original(self, *args, **kwargs)
        if str(self.key).startswith("fastsd-blocks-"):
            received.append((len(value), len(pickle.dumps(value)), value))
        return value

    monkeypatch.setattr(distributed.Future, "result", result)
    cfg = config(tmp_path, SMALL)
    reference = in_process(cfg, tmp_path / "ref")
    assert run_dask(cfg, tmp_path / "dask", client).identical(reference)
    blocks = sum(n for n, _, _ in received)
    assert blocks == fastsd.load_sweep(tmp_path / "dask").manifest["plan"]["blocks"]
    assert max(size / n for n, size, _ in received) <= 4096
    for _, _, records in received:
        for record in records:
            assert set(record) >= {"block", "nonfinite", "nan_xi", "compute_s", "write_s", "host"}
            assert not any(isinstance(v, np.ndarray) for v in record.values())


#: Helpers the scheduler and the workers must import (a module of their own, on their path).
PROBE = """
import os

def touch_pid(directory):
    with open(os.path.join(directory, str(os.getpid())), "w"):
        pass

def warm_here(directory, block):
    return os.getpid(), os.path.exists(os.path.join(directory, str(os.getpid())))
"""


def test_warmup_runs_on_each_worker_before_its_first_task(two_workers, tmp_path, monkeypatch):
    cluster, client = two_workers
    (tmp_path / "fastsd_warm_probe.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    client.run_on_scheduler(site.addsitedir, str(tmp_path))
    client.run(site.addsitedir, str(tmp_path))
    import fastsd_warm_probe as probe

    marks = tmp_path / "warm"
    marks.mkdir()
    env = cluster.env
    try:
        DaskExecutor(client, warmup=functools.partial(probe.touch_pid, str(marks)))
        # a worker that joins after the executor started warms up as it joins
        cluster.env = dict(env, PYTHONPATH=str(tmp_path) + os.pathsep + env["PYTHONPATH"])
        name = cluster.start_worker()
        cluster.wait_for_workers(client, 3)
        task = functools.partial(probe.warm_here, str(marks))
        executor = DaskExecutor(client, warmup=None, tasks_per_thread=8)
        seen = dict(result for _, result in executor.map(task, block_grid(48, 1, 1, 1)))
    finally:
        cluster.env = env
        DaskExecutor(client)  # the default warm-up again, for the workers that join later
    assert all(seen.values()) and len(seen) >= 2
    assert set(map(int, os.listdir(marks))) >= set(seen)
    cluster.kill_worker(name)


@pytest.mark.slow
def test_a_worker_killed_at_many_moments(two_workers, tmp_path, capsys):
    """SIGKILL one of two workers at moments spread over the run -- before the first
    task, after 1 .. N - 2 blocks, after the last -- and start a replacement: every run
    finishes, identical to the in-process run."""
    cluster, client = two_workers
    cfg = config(tmp_path, KILL)
    reference = in_process(cfg, tmp_path / "ref")
    n_blocks = fastsd.load_sweep(tmp_path / "ref").manifest["plan"]["blocks"]
    moments = [0] + np.linspace(1, n_blocks - 2, 9).round().astype(int).tolist() + [n_blocks]
    outcomes = []
    for trial, moment in enumerate(moments):
        cluster.wait_for_workers(client, 2)
        victim = sorted(cluster.workers)[trial % 2]
        killed = []

        def kill(done, total, moment=moment, victim=victim, killed=killed):
            if done == moment and not killed:
                killed.append(done)
                cluster.kill_worker(victim)
                cluster.start_worker()  # the replacement joins while the sweep runs

        if moment == 0:  # before the first task: while the sweep starts
            timer = threading.Timer(0.0, kill, (0, n_blocks))
            timer.start()
        got = run_dask(cfg, tmp_path / f"run{trial}", client, progress=kill)
        if moment == 0:
            timer.join(timeout=120)
        outcomes.append((moment, killed == [moment], got.identical(reference)))
    with capsys.disabled():
        print(f"\nkills (blocks done then of {n_blocks}, killed, identical): {outcomes}")
    assert all(k and same for _, k, same in outcomes)


@pytest.mark.slow
def test_all_workers_lost_stops_in_bounded_time_then_resume_completes(
    two_workers, tmp_path, monkeypatch, capsys
):
    cluster, client = two_workers
    monkeypatch.setattr(executors, "WORKERLESS_TIMEOUT", 3.0)
    cfg = config(tmp_path, KILL)
    reference = in_process(cfg, tmp_path / "ref")

    def kill_all(done, total):
        if done == 4:
            for name in list(cluster.workers):
                cluster.kill_worker(name)

    start = time.monotonic()
    with pytest.raises(ConnectionError) as err:
        run_dask(cfg, tmp_path / "out", client, progress=kill_all)
    assert time.monotonic() - start < 60
    message = str(err.value)
    assert "no Dask worker" in message and "--resume" in message and "\n" not in message
    stored = fastsd.load_sweep(tmp_path / "out")
    assert not stored.complete and len(os.listdir(tmp_path / "out" / "blocks")) >= 4
    cluster.start_worker()
    cluster.wait_for_workers(client, 1)
    got = run_dask(cfg, tmp_path / "out", client, resume=True, progress=False)
    assert got.identical(reference)


@pytest.mark.slow
def test_client_sigkilled_mid_run_then_resumed(two_workers, tmp_path):
    """``fastsd sweep --scheduler tcp://...`` SIGKILLed once blocks are stored: --resume
    on the same cluster completes the Dataset of an in-process run, nothing lost or doubled."""
    cluster, client = two_workers
    cfg = config(tmp_path, KILL)
    reference = in_process(cfg, tmp_path / "ref")
    n_blocks = fastsd.load_sweep(tmp_path / "ref").manifest["plan"]["blocks"]
    out = tmp_path / "out"
    args = [sys.executable, "-m", "fastsd", "sweep", str(cfg.path), "--no-progress"]
    args += ["--output", str(out), "--scheduler", cluster.address]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            markers = os.listdir(out / "blocks") if (out / "blocks").is_dir() else []
            if sum(m.isdigit() for m in markers) >= 3:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    done = sum(m.isdigit() for m in os.listdir(out / "blocks"))
    assert 3 <= done < n_blocks and not fastsd.load_sweep(out).complete
    got = run_dask(cfg, out, client, resume=True, progress=False)
    assert got.identical(reference)
    markers = sorted(m for m in os.listdir(out / "blocks") if m.isdigit())
    assert markers == [f"{i:06d}" for i in range(n_blocks)]


@pytest.mark.slow
def test_scale_with_eight_workers_on_loopback(two_workers, tmp_path, capsys):
    """The scale test that CI can afford: 8 workers, sleeps for compute, real writes."""
    cluster, client = two_workers
    added = [cluster.start_worker() for _ in range(6)]
    cluster.wait_for_workers(client, 8)
    try:
        run = scale_run(client, str(tmp_path / "store"), 4, 0.1, 1 << 18, repeat=1)
    finally:
        for name in added:
            cluster.kill_worker(name)
    assert run["workers"] == 8 and run["blocks"] == 32
    assert run["hosts"] >= 4  # the workers wrote the blocks
    with capsys.disabled():
        print(f"\n8 workers, sleeps 0.1 s: efficiency {run['efficiency']:.2f} ({run})")


def test_chunked_sweeps_with_a_client_equal_in_process():
    """client= in the Python API; blocks finish in any order, reductions keep first ties."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 20, 5))
    theta = rng.normal(size=(6, 5))
    lams = np.concatenate([np.logspace(-3, 3, 6), np.ones(4)])  # exact ties across blocks
    with (
        distributed.Client(
            processes=False,
            n_workers=2,
            threads_per_worker=1,
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
        ) as client,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", fastsd.IllConditionedXiWarning)
        for reduce in (None, "min"):
            kw = dict(reduce=reduce, memory_limit=24_000)
            want = fastsd.sweep_optimal_chunked(X, theta, 0.5, lams, 3, **kw)
            got = fastsd.sweep_optimal_chunked(X, theta, 0.5, lams, 3, client=client, **kw)
            want_r = fastsd.sweep_risk_chunked(X, theta, 0.5, lams, [0.0, 0.7], 3, **kw)
            got_r = fastsd.sweep_risk_chunked(
                X, theta, 0.5, lams, [0.0, 0.7], 3, client=client, **kw
            )
            if reduce is None:
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1], want[1])
                np.testing.assert_array_equal(got_r, want_r)
            else:
                for field in ("risk", "lam_index", "xi_index", "xi"):
                    np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
                    np.testing.assert_array_equal(getattr(got_r, field), getattr(want_r, field))


def test_scheduler_local_2_from_the_cli(tmp_path):
    cfg = config(tmp_path, dict(ranks=[2, 3, 4], lams=9))
    reference = in_process(cfg, tmp_path / "ref")
    args = ["sweep", str(cfg.path), "--no-progress", "--output", str(tmp_path / "local")]
    assert main(args + ["--scheduler", "local:2"]) == 0
    assert fastsd.load_sweep(tmp_path / "local").to_xarray().load().identical(reference)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_tasks_per_thread_is_validated(bad, error):
    with pytest.raises(error, match="tasks_per_thread"):
        DaskExecutor(client=None, tasks_per_thread=bad)
