r"""Executors of the block runner: where the blocks of a sweep are computed.

* :class:`InProcessExecutor` (the default): one block after another in this
  process, each block parallel over Numba threads -- exactly the cost of
  calling the sweep function on that block.
* :class:`DaskExecutor`: consecutive blocks are grouped into Dask tasks, about
  ``tasks_per_thread`` per worker thread (a Dask task costs milliseconds of
  scheduling). Each task carries what it needs and nothing else: its own
  problems' inputs (memory-mapped inputs travel as a file name and offset),
  so the scheduler can run it again anywhere. The Numba thread count of a block
  follows the worker's ``nthreads``.

A *two-phase* task (:class:`TwoPhaseTask`, e.g. :class:`fastsd.blocks.tasks.StoreTask`)
computes a block and then writes it into the store. Both executors run such
tasks through :func:`pipeline`: blocks are computed on the calling thread and
written on a helper thread, so a block's write overlaps the next block's
compute, with at most ``depth`` computed blocks waiting. Under Dask the workers
write their own blocks and hand back only each block's small record; the
process that runs the sweep never receives result arrays.

When a worker dies, the scheduler runs its lost tasks again on the others; a
task run again skips the blocks already stored (their markers exist). If no
worker is left for :data:`WORKERLESS_TIMEOUT` seconds, or the scheduler is
lost, the run stops with a one-line :class:`ConnectionError` (finished blocks
are kept).

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
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, runtime_checkable

from .._jit import threads
from ..engine.warmup import warmup
from .plan import Block

_R = TypeVar("_R")

__all__ = [
    "CONNECT_TIMEOUT",
    "DaskExecutor",
    "InProcessExecutor",
    "TwoPhaseTask",
    "WORKERLESS_TIMEOUT",
    "get_executor",
    "max_local_workers",
    "pipeline",
    "warm_worker",
]

#: Seconds a Dask run waits with no worker at all before it stops.
WORKERLESS_TIMEOUT = 60.0
#: Seconds between two looks at the cluster while no task finishes.
_POLL = 1.0


@runtime_checkable
class TwoPhaseTask(Protocol):
    """A task that computes a block, then writes it (and knows the blocks already written)."""

    def compute(self, block: Block) -> Any: ...

    def write(self, block: Block, computed: Any) -> Any: ...

    def stored(self, block: Block) -> Any: ...


def _finished(value: Any) -> Future[Any]:
    fut: Future[Any] = Future()
    fut.set_result(value)
    return fut


def pipeline(
    task: TwoPhaseTask, blocks: Sequence[Block], depth: int = 1
) -> Iterator[tuple[Block, Any]]:
    """Compute the blocks here and write them on a helper thread; yield ``(block, record)`` in order.

    At most ``depth`` computed blocks wait for their write while the next block
    is computed (so at most ``depth + 1`` blocks' results are alive). Blocks
    already stored are not computed again. An error stops the run before the
    next block is computed; the writes already started finish first (each
    block is stored whole, or not marked done).
    """
    pending: deque[tuple[Block, Future[Any], bool]] = deque()  # (block, record, a write?)
    writes = 0  # writes submitted and not yet handed on
    with ThreadPoolExecutor(1, thread_name_prefix="fastsd-writer") as writer:
        for block in blocks:
            record = task.stored(block)
            if record is not None:
                pending.append((block, _finished(record), False))
            else:
                computed = task.compute(block)
                pending.append((block, writer.submit(task.write, block, computed), True))
                writes += 1
                del computed
            while pending and (writes > depth or pending[0][1].done()):
                done, fut, write = pending.popleft()
                writes -= write
                yield done, fut.result()
        while pending:
            done, fut, _ = pending.popleft()
            yield done, fut.result()


class InProcessExecutor:
    """Blocks one by one in this process (Numba threads inside each block)."""

    name = "in-process"

    def map(
        self, task: Callable[[Block], _R], blocks: Sequence[Block]
    ) -> Iterator[tuple[Block, _R]]:
        """Yield ``(block, task(block))`` in order (two-phase tasks: through :func:`pipeline`)."""
        if isinstance(task, TwoPhaseTask):
            yield from pipeline(task, blocks)
            return
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


def _run_on_worker(task: Callable[[Block], _R], blocks: Sequence[Block]) -> list[Any]:
    """Blocks on a Dask worker, with as many Numba threads as it has; returns their results
    (a two-phase task's records: the worker has written the blocks)."""
    import numba
    from distributed import get_worker

    # NUMBA_NUM_THREADS is set at import from the environment; numba's stubs omit it
    limit: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    count = max(1, min(get_worker().state.nthreads, limit))
    with threads(count):
        if isinstance(task, TwoPhaseTask):
            return [record for _, record in pipeline(task, blocks)]
        return [task(block) for block in blocks]


def warm_worker() -> None:
    """Ready this process for block tasks: compile or load every kernel
    (:func:`fastsd.warmup`) and import the store's zarr."""
    warmup()
    try:
        import zarr  # noqa: F401  (the workers write the store)
    except ImportError:  # pragma: no cover - the chunked sweeps do not need it
        pass


def _warmup_plugin(call: Callable[[], object]) -> Any:
    """A Dask worker plugin that calls ``call()`` on each worker, before its first task."""
    base: Any = _require_distributed().WorkerPlugin

    class WarmUp(base):  # type: ignore[misc]
        name = "fastsd-warmup"

        def setup(self, worker: Any) -> None:
            call()

    return WarmUp()


def _problems(group: Sequence[Block]) -> tuple[int, int]:
    return min(b.b0 for b in group), max(b.b1 for b in group)


def _span(group: Sequence[Block]) -> str:
    first, last = group[0].index, group[-1].index
    return f"block {first}" if first == last else f"blocks {first}-{last}"


class DaskExecutor:
    """Blocks as Dask tasks on the workers of ``client``.

    Parameters
    ----------
    client : distributed.Client
    owned : tuple, optional
        Objects to close with the executor (a LocalCluster and its client).
    tasks_per_thread : int, default=4
        Blocks are grouped (consecutive ones together) into about this many Dask
        tasks per worker thread, one block per task at most: fewer tasks cost
        less scheduling, more balance the load and lose less work when a worker
        dies.
    warmup : callable or None, default=warm_worker
        Called on each worker before its first task (a Dask worker plugin,
        registered here: the executor is ready when the workers are warm, and
        workers that join later run it as they start).
    """

    def __init__(
        self,
        client: Any,
        owned: Iterable[Any] = (),
        tasks_per_thread: int = 4,
        warmup: Callable[[], object] | None = warm_worker,
    ) -> None:
        if isinstance(tasks_per_thread, bool) or not isinstance(tasks_per_thread, int):
            raise TypeError(f"tasks_per_thread must be an int, got {tasks_per_thread!r}")
        if tasks_per_thread < 1:
            raise ValueError(f"tasks_per_thread must be >= 1, got {tasks_per_thread}")
        self.client = client
        self._owned = tuple(owned)
        self.tasks_per_thread = tasks_per_thread
        self.name = f"dask ({client.scheduler.address})"
        if warmup is not None:
            try:
                client.register_plugin(_warmup_plugin(warmup))
            except OSError:  # a worker lost while warming up: workers that join warm up then
                pass

    def _threads(self) -> int:
        """Worker threads in the cluster now (0 when none, or the scheduler does not answer)."""
        try:
            return sum(self.client.nthreads(callback_timeout=10).values())
        except (OSError, TimeoutError):
            return 0

    def map(
        self, task: Callable[[Block], _R], blocks: Sequence[Block]
    ) -> Iterator[tuple[Block, _R]]:
        """Yield ``(block, result)`` as the tasks finish (any order)."""
        if not blocks:
            return
        n_tasks = min(len(blocks), self.tasks_per_thread * max(1, self._threads()))
        bounds = [len(blocks) * i // n_tasks for i in range(n_tasks + 1)]
        token = uuid.uuid4().hex[:12]
        pending: dict[Any, Sequence[Block]] = {}
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            group = blocks[lo:hi]
            subset = getattr(task, "subset", None)
            payload = task if subset is None else subset(*_problems(group))
            fut = self.client.submit(
                _run_on_worker,
                payload,
                group,
                pure=False,
                key=f"fastsd-blocks-{group[0].index}-{group[-1].index}-{token}",
            )
            pending[fut] = group
        try:
            yield from self._gather(pending)
        finally:
            if pending:
                self.client.cancel(list(pending))

    def _gather(self, pending: dict[Any, Sequence[Block]]) -> Iterator[tuple[Block, Any]]:
        """Yield the blocks of the tasks as they finish; stop on an error, a cancelled task,
        or no worker for WORKERLESS_TIMEOUT seconds."""
        distributed = _require_distributed()
        workerless_since: float | None = None
        while pending:
            try:
                done, _ = distributed.wait(
                    list(pending), timeout=_POLL, return_when="FIRST_COMPLETED"
                )
            except TimeoutError:
                if self.client.status not in ("running", "connecting"):
                    raise ConnectionError(
                        "lost the Dask client's connection to the scheduler"
                    ) from None
                if self._threads():
                    workerless_since = None
                    continue
                now = time.monotonic()
                workerless_since = workerless_since or now
                if now - workerless_since > WORKERLESS_TIMEOUT:
                    raise ConnectionError(
                        f"no Dask worker for {WORKERLESS_TIMEOUT:g} s; "
                        f"{sum(map(len, pending.values()))} blocks not computed"
                    ) from None
                continue
            for fut in done:
                if fut.status in ("pending", "lost"):  # its worker died after it finished:
                    continue  # the scheduler runs it again (it skips the stored blocks)
                group = pending.pop(fut)
                results = self._results(fut, group, distributed)
                fut.release()
                yield from zip(group, results)

    @staticmethod
    def _results(fut: Any, group: Sequence[Block], distributed: Any) -> list[Any]:
        """A finished task's results, or its error as one line."""
        if fut.status == "finished":
            results: list[Any] = fut.result()
            return results
        if fut.status == "error":
            exc = fut.exception()
            if isinstance(exc, distributed.KilledWorker):
                raise ConnectionError(
                    f"Dask stopped retrying {_span(group)}: the workers running them died "
                    "each time (out of memory?)"
                ) from None
            raise exc
        raise ConnectionError(
            f"Dask cancelled the task of {_span(group)} ({fut.status}; the scheduler was lost?)"
        )

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
                # no dashboard; the scheduler's HTTP endpoint on a free loopback port
                # (None would still try 8787 and warn when another cluster holds it)
                dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": False},
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
