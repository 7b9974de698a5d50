"""The Dask executor: a real ``dask scheduler`` + 2 ``dask worker`` processes.

Started here on 127.0.0.1 with free ports, every wait bounded, and stopped by
the PIDs we started. One worker is SIGKILLed mid-run; the sweep completes on
the other with results identical to the in-process run.
"""

from __future__ import annotations

import operator
import os
import signal
import socket
import subprocess
import sys
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = """
[problems]
source = "synthetic"
family = "theorem1_family"
params = {{ ranks = [2, 3, 4, 5, 6, 7, 8, 2, 3, 4, 5, 6, 7, 8], seed = 1 }}
[grid]
lams = {{ start = 1e-3, stop = 1e3, num = 9 }}
max_steps = 4
[run]
selection = "oracle"
output = "{output}"
block = 1
memory_limit = "54KiB"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _stop(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - the kernel reaps it
            pass


@pytest.fixture()
def cluster():
    """(address, client, {name: worker process}): scheduler + workers w1 (1 thread), w2 (2)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    quiet = dict(env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dask",
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-dashboard",
                ],
                **quiet,
            )
        )
        workers = {}
        for name, nthreads in (("w1", 1), ("w2", 2)):
            workers[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dask",
                    "worker",
                    address,
                    "--name",
                    name,
                    "--nthreads",
                    str(nthreads),
                    "--no-nanny",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--death-timeout",
                    "60",
                ],
                **quiet,
            )
            procs.append(workers[name])
        client = distributed.Client(address, timeout="60s")
        try:
            client.wait_for_workers(2, timeout=60)
            yield address, client, workers
        finally:
            client.close(timeout=10)
    finally:
        _stop(procs)


def _worker_address(client, name):
    for addr, info in client.scheduler_info()["workers"].items():
        if info["name"] == name:
            return addr
    raise LookupError(name)


def test_dask_workers_sigkill_mid_run(cluster, tmp_path, capsys):
    address, client, workers = cluster
    from fastsd.blocks.executors import _run_on_worker

    # Numba threads of a block follow the worker's nthreads
    probe = operator.methodcaller("get_num_threads")
    import numba

    for name, want in (("w1", 1), ("w2", min(2, numba.config.NUMBA_NUM_THREADS))):
        fut = client.submit(
            _run_on_worker, probe, [numba], pure=False, workers=[_worker_address(client, name)]
        )
        assert fut.result(timeout=60) == [want]

    (tmp_path / "sweep.toml").write_text(CONFIG.format(output="in-process"))
    assert main(["sweep", str(tmp_path / "sweep.toml"), "--no-progress"]) == 0
    reference = fastsd.load_sweep(tmp_path / "in-process").to_xarray().load()

    cfg = config_sweep.load_config(tmp_path / "sweep.toml").with_output(tmp_path / "dask")
    events = []

    def kill_after_three(done, total):
        events.append(done)
        if done == 3:
            workers["w2"].send_signal(signal.SIGKILL)
            workers["w2"].wait(timeout=30)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastsd.IllConditionedXiWarning)
        config_sweep.run_sweep(cfg, client=client, progress=kill_after_three)
    assert events == list(range(1, events[-1] + 1)) and events[-1] >= 40
    deadline = time.monotonic() + 30
    while len(client.scheduler_info()["workers"]) != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(w["name"] for w in client.scheduler_info()["workers"].values()) == ["w1"]
    got = fastsd.load_sweep(tmp_path / "dask").to_xarray().load()
    assert got.identical(reference)

    # the CLI with --scheduler tcp://... on the surviving worker, resuming nothing
    assert (
        main(
            [
                "sweep",
                str(tmp_path / "sweep.toml"),
                "--no-progress",
                "--output",
                str(tmp_path / "cli"),
                "--scheduler",
                address,
            ]
        )
        == 0
    )
    assert fastsd.load_sweep(tmp_path / "cli").to_xarray().load().identical(reference)


def test_chunked_sweeps_with_a_client_equal_in_process():
    """client= in the Python API; blocks finish in any order, reductions keep first ties."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 20, 5))
    theta = rng.normal(size=(6, 5))
    lams = np.concatenate([np.logspace(-3, 3, 6), np.ones(4)])  # exact ties across blocks
    with (
        distributed.Client(
            processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None
        ) as client,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", fastsd.IllConditionedXiWarning)
        for reduce in (None, "min"):
            kw = dict(reduce=reduce, memory_limit=12_000)
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
    (tmp_path / "sweep.toml").write_text(
        CONFIG.format(output="out").replace(
            "ranks = [2, 3, 4, 5, 6, 7, 8, 2, 3, 4, 5, 6, 7, 8]", "ranks = [2, 3, 4]"
        )
    )
    assert main(["sweep", str(tmp_path / "sweep.toml"), "--no-progress"]) == 0
    reference = fastsd.load_sweep(tmp_path / "out").to_xarray().load()
    assert (
        main(
            [
                "sweep",
                str(tmp_path / "sweep.toml"),
                "--no-progress",
                "--output",
                str(tmp_path / "local"),
                "--scheduler",
                "local:2",
            ]
        )
        == 0
    )
    assert fastsd.load_sweep(tmp_path / "local").to_xarray().load().identical(reference)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_tasks_per_thread_is_validated(bad, error):
    from fastsd.blocks.executors import DaskExecutor

    with pytest.raises(error, match="tasks_per_thread"):
        DaskExecutor(client=None, tasks_per_thread=bad)
