r"""Scale test: many Dask workers on 127.0.0.1, each block's compute replaced by a sleep.

A ``dask scheduler`` and N ``dask worker`` processes (1 thread each, no nanny)
are started on 127.0.0.1 with free ports (:class:`LoopbackCluster`; every wait
bounded, and only the processes started here are stopped, by PID). The sweep
has ``blocks_per_worker`` x N blocks. Each block *computes* by sleeping
``sleep`` seconds (:class:`SleepTask`) and then writes its chunks into a real
sweep store and its marker, as a sweep's blocks do -- so the measurement holds
everything but the kernels: the scheduling of the tasks, the workers' writes,
and the records coming back. With perfect scaling the run takes
``blocks_per_worker * sleep`` seconds (the *ideal wall*); efficiency = ideal
wall / measured wall.

Run it with ``fastsd bench --scale [--workers 8,16,32] [--sleep 0.2]``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from .._argparse import OneLineParser
from ..blocks.executors import DaskExecutor
from ..blocks.plan import Block, block_grid
from ..blocks.runner import run_blocks
from ..store.layout import coordinates, layout
from ..store.manifest import BLOCKS
from ..store.writer import BlockRecord, BlockWriter, SweepStore
from .kernels import check_json, machine_description, write_json

__all__ = [
    "LoopbackCluster",
    "SleepTask",
    "format_scale",
    "main",
    "measure_scale",
    "scale_run",
]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LoopbackCluster:
    """A ``dask scheduler`` and worker processes on 127.0.0.1, stopped by their PIDs.

    Parameters
    ----------
    workers : int
        Worker processes to start (1 thread each, no nanny).
    timeout : float
        Bound, in seconds, on every wait (the scheduler's port, the workers joining).
    env : dict, optional
        Environment of the processes (default: this one's).
    """

    def __init__(self, workers: int, timeout: float = 120.0, env: Mapping[str, str] | None = None):
        self.timeout = timeout
        self.env = dict(os.environ if env is None else env)
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self._initial = workers
        self._count = 0

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start_worker(self, nthreads: int = 1) -> str:
        """Start one more worker process; returns its name (it joins asynchronously)."""
        name = f"w{self._count}"
        self._count += 1
        self.workers[name] = self._spawn(
            [
                "worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                str(nthreads),
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--death-timeout",
                str(int(self.timeout)),
            ]
        )
        return name

    def kill_worker(self, name: str) -> None:
        """SIGKILL one worker started here, and reap it."""
        proc = self.workers.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=self.timeout)

    def wait_for_workers(self, client: Any, n: int) -> None:
        """Wait (bounded) until the scheduler has exactly ``n`` workers."""
        deadline = time.monotonic() + self.timeout
        while len(client.nthreads(callback_timeout=self.timeout)) != n:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the Dask cluster did not reach {n} workers in {self.timeout} s"
                )
            time.sleep(0.1)

    def __enter__(self) -> LoopbackCluster:
        self.scheduler = self._spawn(
            ["scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"]
        )
        for _ in range(self._initial):
            self.start_worker()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        procs = list(self.workers.values()) + ([self.scheduler] if self.scheduler else [])
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in procs:
            try:
                proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover - the kernel reaps it
                pass
        self.workers.clear()


class SleepTask:
    """A two-phase block task whose compute is a sleep and whose write is real.

    ``compute`` sleeps ``seconds`` and returns the block's values (every entry
    its block index); ``write`` stores them with the store's
    :class:`~fastsd.store.writer.BlockWriter`, chunks then marker.
    """

    def __init__(self, writer: BlockWriter, variables: Mapping[str, Any], seconds: float) -> None:
        self.writer = writer
        self.shapes = {name: shape[2:] for name, (_, shape, _) in variables.items()}
        self.seconds = seconds

    def stored(self, block: Block) -> BlockRecord | None:
        return self.writer.record(block.index)

    def compute(self, block: Block) -> dict[str, Any]:
        time.sleep(self.seconds)
        size = (block.b1 - block.b0, block.l1 - block.l0)
        return {name: np.full(size + s, float(block.index)) for name, s in self.shapes.items()}

    def write(self, block: Block, computed: Mapping[str, Any]) -> BlockRecord:
        return self.writer.write(block, computed, {"compute_s": self.seconds})

    def __call__(self, block: Block) -> BlockRecord:
        return self.write(block, self.compute(block))


def _store(directory: str, n_blocks: int, chunk_bytes: int) -> tuple[SweepStore, list[Block]]:
    """A fixed-xi store with ``n_blocks`` blocks of about ``chunk_bytes`` each (1 problem x L)."""
    G, K = 4, 3
    L = max(1, chunk_bytes // (8 * G * (K + 1)))
    variables = layout("risk", n_blocks, L, K, G)
    coords = coordinates(n_blocks, np.logspace(-3, 3, L), K, np.zeros((G, K)))
    store = SweepStore.create(directory, {"config": {}}, variables, coords, (1, L), {})
    return store, block_grid(n_blocks, L, 1, L)


def scale_run(
    client: Any,
    directory: str,
    blocks_per_worker: int = 16,
    sleep: float = 0.2,
    chunk_bytes: int = 1 << 20,
    repeat: int = 3,
) -> dict[str, Any]:
    """The sleep sweep on the workers of ``client``: ``repeat`` timed runs after a warm-up
    run (the workers' first tasks import and open what they need).

    Returns
    -------
    dict
        ``workers``, ``blocks``, ``tasks``, ``ideal_s``, ``wall_s`` (median;
        ``wall_min_s``, ``wall_max_s``), ``efficiency``, ``write_s`` (median
        seconds per block write), ``hosts`` (distinct worker processes that
        wrote blocks) and ``overhead_per_task_s`` ((wall - ideal) / tasks per worker).
    """
    n = len(client.nthreads(callback_timeout=60))
    store, blocks = _store(directory, n * blocks_per_worker, chunk_bytes)
    task = SleepTask(store.writer, layout("risk", 1, 1, 3, 4), sleep)
    executor = DaskExecutor(client)  # workers warmed: imports, kernels
    client.run(importlib.import_module, __name__)  # where SleepTask lives
    walls = []
    for _ in range(repeat + 1):  # the first run is a warm-up, not counted
        shutil.rmtree(os.path.join(directory, BLOCKS))
        os.makedirs(os.path.join(directory, BLOCKS))
        start = time.perf_counter()
        run_blocks(blocks, task, lambda block, record: None, executor=executor)
        walls.append(time.perf_counter() - start)
    walls = walls[1:]
    records = store.records()
    assert len(records) == len(blocks)
    tasks = min(len(blocks), executor.tasks_per_thread * n)
    ideal = blocks_per_worker * sleep
    wall = statistics.median(walls)
    return {
        "workers": n,
        "blocks": len(blocks),
        "tasks": tasks,
        "ideal_s": ideal,
        "wall_s": wall,
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "efficiency": ideal / wall,
        "write_s": statistics.median(r["write_s"] for r in records),
        "hosts": len({r["pid"] for r in records}),
        "overhead_per_task_s": (wall - ideal) / (tasks / n),
    }


def measure_scale(
    workers: Iterable[int] = (8, 16, 32),
    blocks_per_worker: int = 16,
    sleep: float = 0.2,
    chunk_bytes: int = 1 << 20,
    directory: str | None = None,
    repeat: int = 3,
    profile: bool = True,
) -> dict[str, Any]:
    """:func:`scale_run` on a :class:`LoopbackCluster` of each size in ``workers``.

    ``profile=False`` turns off the workers' statistical profiler (Dask's
    ``distributed.worker.profile.enabled``), which samples every worker's
    threads every 10 ms: about half of an idle worker's CPU time, which adds up
    when tens of workers share two cores.

    Returns
    -------
    dict
        ``runs`` (worker count -> :func:`scale_run`'s result) and the settings,
        ``machine`` and ``load_average_before`` / ``_after``.
    """
    import distributed

    work = directory or tempfile.mkdtemp(prefix="fastsd-bench-scale-")
    env = dict(os.environ)
    if not profile:
        env["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"] = "False"
    res: dict[str, Any] = {
        "profile": profile,
        "sleep": sleep,
        "blocks_per_worker": blocks_per_worker,
        "chunk_bytes": chunk_bytes,
        "repeat": repeat,
        "load_average_before": os.getloadavg(),
        "runs": {},
    }
    try:
        for n in workers:
            out = os.path.join(work, f"store-{n}")
            with (
                LoopbackCluster(n, env=env) as cluster,
                distributed.Client(cluster.address, timeout=f"{int(cluster.timeout)}s") as client,
            ):
                cluster.wait_for_workers(client, n)
                res["runs"][str(n)] = scale_run(
                    client, out, blocks_per_worker, sleep, chunk_bytes, repeat
                )
            shutil.rmtree(out, ignore_errors=True)
    finally:
        if directory is None:
            shutil.rmtree(work, ignore_errors=True)
    res["load_average_after"] = os.getloadavg()
    res["machine"] = machine_description()
    return res


def format_scale(res: Mapping[str, Any]) -> str:
    """Markdown table of a :func:`measure_scale` result."""
    lines = [
        f"{res['blocks_per_worker']} blocks per worker, each a {res['sleep']:g} s sleep and a "
        f"{res['chunk_bytes'] / 2**20:g} MiB chunk write; workers 1 thread, no nanny, on "
        f"127.0.0.1{'' if res['profile'] else ', statistical profiler off'}; median (min-max) "
        f"of {res['repeat']} runs after a warm-up run; load average {res['load_average_before'][0]:.1f} before, "
        f"{res['load_average_after'][0]:.1f} after; {res['machine']}",
        "",
        "| workers | blocks | tasks | ideal wall s | wall s | efficiency | write s / block "
        "| overhead s / task | writers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"].values():
        lines.append(
            f"| {r['workers']} | {r['blocks']} | {r['tasks']} | {r['ideal_s']:.2f} | "
            f"{r['wall_s']:.2f} ({r['wall_min_s']:.2f}-{r['wall_max_s']:.2f}) | {r['efficiency']:.2f} | {r['write_s']:.4f} | "
            f"{r['overhead_per_task_s']:.4f} | {r['hosts']} |"
        )
    return "\n".join(lines)


def _counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected worker counts like 8,16,32, got {text!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"worker counts must be >= 1, got {text!r}")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(
        prog="fastsd bench --scale", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--workers", type=_counts, default=[8, 16, 32], help="e.g. 8,16,32")
    parser.add_argument("--blocks-per-worker", type=int, default=16)
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds per block")
    parser.add_argument("--chunk-mib", type=float, default=1.0, help="MiB written per block")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per worker count")
    parser.add_argument(
        "--no-profile", action="store_true", help="workers without Dask's statistical profiler"
    )
    parser.add_argument("--dir", help="where the stores go (default: a temporary directory)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.blocks_per_worker < 1 or args.sleep < 0 or args.chunk_mib <= 0 or args.repeat < 1:
        parser.error("--blocks-per-worker, --repeat >= 1, --sleep >= 0 and --chunk-mib > 0 please")
    check_json(parser, args)
    res = measure_scale(
        args.workers,
        args.blocks_per_worker,
        args.sleep,
        int(args.chunk_mib * 2**20),
        args.dir,
        args.repeat,
        profile=not args.no_profile,
    )
    print(format_scale(res))
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
