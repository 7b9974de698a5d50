r"""Executors of the block runner: where the blocks of a sweep are computed.

* :class:`InProcessExecutor` (the default): one block after another in this
  process, each block parallel over Numba threads -- exactly the cost of
  calling the sweep function on that block.
* :class:`DaskExecutor`: consecutive blocks are grouped into Dask tasks that
  run the same task object on a worker (the pattern of STUMPY's ``stumped``:
  one driver, submitted per chunk), about ``tasks_per_thread`` tasks per worker
  thread: a Dask task costs milliseconds of scheduling, as much as a small
  block's compute (measurements: the user guide's performance page). The task object is scattered to the workers once; the blocks
  of one problem range are preferably sent to one worker (which then decomposes
  those problems once); results come back to this process, block by block,
  which alone writes the store. The Numba thread count of a block follows the
  worker's ``nthreads``. When a worker dies, the scheduler reschedules its lost
  tasks on the others; blocks already handed back are never recomputed.

:func:`get_executor` turns the ``--scheduler`` option / ``client=`` argument
into an executor: ``None`` (in-process), ``"local:N"`` (a
``distributed.LocalCluster`` of N single-threaded worker processes, closed
with the executor), ``"tcp://HOST:PORT"`` (a running ``dask scheduler``), or a
``distributed.Client``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from .._jit import threads
from .plan import Block

_R = TypeVar("_R")

__all__ = [
    "CONNECT_TIMEOUT",
    "InProcessExecutor",
    "DaskExecutor",
    "get_executor",
    "max_local_workers",
]


class InProcessExecutor:
    """Blocks one by one in this process (Numba threads inside each block)."""

    name = "in-process"

    def map(
        self, task: Callable[[Block], _R], blocks: Sequence[Block]
    ) -> Iterator[tuple[Block, _R]]:
        """Yield ``(block, task(block))`` in order."""
        for block in blocks:
            yield block, task(block)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _require_distributed() -> Any:
    try:
        import distributed
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Dask executor needs dask.distributed: pip install 'fastsd[dask]'"
        ) from None
    return distributed


def _run_on_worker(task: Callable[[Block], _R], blocks: Sequence[Block]) -> list[_R]:
    """Blocks on a Dask worker, one after another, with as many Numba threads as it has."""
    import numba
    from distributed import get_worker

    # NUMBA_NUM_THREADS is set at import from the environment; numba's stubs omit it
    limit: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    count = max(1, min(get_worker().state.nthreads, limit))
    with threads(count):
        return [task(block) for block in blocks]


class DaskExecutor:
    """Blocks as Dask tasks on the workers of ``client``.

    Parameters
    ----------
    client : distributed.Client
    owned : tuple, optional
        Objects to close with the executor (a LocalCluster and its client).
    tasks_per_thread : int, default=2
        Blocks are grouped (consecutive ones together) into about this many Dask
        tasks per worker thread, one block per task at most: fewer tasks cost
        less scheduling, more balance the load and lose less work when a worker
        dies.
    """

    def __init__(self, client: Any, owned: Iterable[Any] = (), tasks_per_thread: int = 2) -> None:
        if isinstance(tasks_per_thread, bool) or not isinstance(tasks_per_thread, int):
            raise TypeError(f"tasks_per_thread must be an int, got {tasks_per_thread!r}")
        if tasks_per_thread < 1:
            raise ValueError(f"tasks_per_thread must be >= 1, got {tasks_per_thread}")
        self.client = client
        self._owned = tuple(owned)
        self.tasks_per_thread = tasks_per_thread
        self.name = f"dask ({client.scheduler.address})"

    def map(
        self, task: Callable[[Block], _R], blocks: Sequence[Block]
    ) -> Iterator[tuple[Block, _R]]:
        """Yield ``(block, result)`` as the tasks finish (any order)."""
        distributed = _require_distributed()
        if not blocks:
            return
        remote = self.client.scatter(task, broadcast=True, hash=False)
        # blocks of the same problems go preferably to one worker, which decomposes them
        # once (the task caches it); any worker may take them when that one is busy or dead
        info = self.client.scheduler_info()["workers"]
        workers = sorted(info)
        n_threads = sum(int(w.get("nthreads", 1)) for w in info.values()) or 1
        n_tasks = min(len(blocks), self.tasks_per_thread * n_threads)
        bounds = [len(blocks) * i // n_tasks for i in range(n_tasks + 1)]
        home: dict[int, str] = {}
        futures: dict[str, tuple[Any, Sequence[Block]]] = {}
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            group = blocks[lo:hi]
            b0 = group[0].b0
            where = home.setdefault(b0, workers[len(home) % len(workers)]) if workers else None
            fut = self.client.submit(
                _run_on_worker,
                remote,
                group,
                pure=False,
                key=f"fastsd-blocks-{group[0].index}-{group[-1].index}-{id(blocks):x}",
                workers=where,
                allow_other_workers=True,
            )
            futures[fut.key] = (fut, group)
        try:
            finished = distributed.as_completed([f for f, _ in futures.values()], with_results=True)
            for fut, results in finished:
                group = futures.pop(fut.key)[1]
                fut.release()
                yield from zip(group, results)
        finally:
            if futures:
                self.client.cancel([f for f, _ in futures.values()])
            self.client.cancel([remote])

    def close(self) -> None:
        """Close the cluster and client this executor started (not a caller's)."""
        for obj in self._owned:
            obj.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: What :func:`get_executor` returns (both run blocks with ``map``).
Executor = InProcessExecutor | DaskExecutor


_LOCAL = re.compile(r"^local:(\d+)$")
_REMOTE = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(\d+)/?$")

#: Seconds to wait for a remote scheduler before giving up (``connect_timeout``).
CONNECT_TIMEOUT = 5.0


def max_local_workers() -> int:
    """Most worker processes ``"local:N"`` may start: the CPU cores of this machine.

    Each worker is a process with one thread running CPU-bound blocks; more
    workers than cores only compete for them (and each costs a Python process's
    memory). For more, start a cluster and pass its ``tcp://`` address.
    """
    return os.cpu_count() or 1


def _local_workers(scheduler: str, text: str) -> int:
    n, most = int(text), max_local_workers()
    if not 1 <= n <= most:
        raise ValueError(
            f"scheduler 'local:N' takes N between 1 and the number of CPU cores ({most} "
            f"here), got {scheduler!r}; for more workers start a Dask cluster and pass "
            "'tcp://HOST:PORT'"
        )
    return n


def _quiet_workers() -> Any:
    """Worker processes started meanwhile ignore Ctrl-C (SIGINT reaches the whole
    process group): this process alone handles it and closes them, so that an
    interrupted run prints one line, not a traceback per worker."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def ignoring() -> Iterator[None]:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    return ignoring()


def get_executor(
    scheduler: str | None = None,
    client: Any = None,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> Executor:
    """The executor for a ``--scheduler`` string or a ``client=`` argument.

    Parameters
    ----------
    scheduler : str, optional
        ``"local:N"`` (1 <= N <= :func:`max_local_workers` worker processes with
        one thread each, started here and closed with the executor) or
        ``"tcp://HOST:PORT"`` / ``"tls://HOST:PORT"`` (the address of a running
        ``dask scheduler``). None: in-process.
    client : distributed.Client, optional
        Use this client (not closed by the executor).
    connect_timeout : float, default=CONNECT_TIMEOUT (5 s)
        Seconds to wait for a remote scheduler before failing.

    Returns
    -------
    InProcessExecutor or DaskExecutor
    """
    if client is not None and scheduler is not None:
        raise ValueError("pass either scheduler or client, not both")
    if client is not None:
        if not hasattr(client, "submit") or not hasattr(client, "scatter"):
            raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
        return DaskExecutor(client)
    if scheduler is None:
        return InProcessExecutor()
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be a string, got {type(scheduler).__name__}")
    if (
        isinstance(connect_timeout, bool)
        or not isinstance(connect_timeout, (int, float))
        or not 0 < connect_timeout < float("inf")
    ):
        raise ValueError(
            f"connect_timeout must be a positive number of seconds, got {connect_timeout!r}"
        )
    match, remote = _LOCAL.match(scheduler), _REMOTE.match(scheduler)
    if match is None and (remote is None or not 1 <= int(remote.group(3)) <= 65535):
        raise ValueError(
            f"scheduler must be 'local:N' or 'tcp://HOST:PORT' (or 'tls://HOST:PORT'), "
            f"got {scheduler!r}"
        )
    if match is not None:
        n = _local_workers(scheduler, match.group(1))
        distributed = _require_distributed()
        with _quiet_workers():
            cluster = distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
                silence_logs=logging.CRITICAL,
            )
        client = distributed.Client(cluster)
        return DaskExecutor(client, owned=(client, cluster))
    distributed = _require_distributed()
    try:
        client = distributed.Client(scheduler, timeout=f"{connect_timeout}s")
    except OSError as exc:
        raise OSError(
            f"could not connect to the Dask scheduler at {scheduler} within "
            f"{connect_timeout:g} s ({type(exc).__name__}); is it running? (wait longer "
            "with --connect-timeout / connect_timeout=)"
        ) from None
    return DaskExecutor(client, owned=(client,))
