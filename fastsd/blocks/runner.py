r"""The block runner: plan a sweep as blocks, run them on an executor, store them.

Every sweep that does not fit in one call -- :func:`fastsd.sweep_risk_chunked`,
:func:`fastsd.sweep_optimal_chunked`, ``fastsd sweep CONFIG.toml`` and the Dask
path -- goes through :func:`run_blocks`:

1. :func:`~fastsd.blocks.plan.plan_blocks` sizes a block (problems x lambdas) to a memory budget and
   :func:`~fastsd.blocks.plan.block_grid` cuts the (problem, lambda) grid into :class:`~fastsd.blocks.plan.Block`\ s;
2. an *executor* (:mod:`fastsd.blocks.executors`: in-process, or Dask) calls one
   picklable *task* per block and yields the finished blocks;
3. a *consumer* (an in-memory array, a reduction, or the Zarr
   :class:`~fastsd.store.SweepStore`) takes each finished block, in the order
   they finish.

Blocks already done (``skip``) are never submitted again, so a resumed run
computes only the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .executors import Executor, InProcessExecutor
from .plan import Block

_R = TypeVar("_R")

__all__ = ["run_blocks"]


def _progress_bar(
    progress: bool | Callable[[int, int], object], total: int, initial: int, desc: str
) -> tuple[Any, Callable[[int, int], object] | None]:
    """tqdm bar (progress=True), a callable ``progress(done, total)``, or nothing."""
    if not progress:
        return None, None
    if callable(progress):
        return None, progress
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "progress=True needs tqdm: pip install 'fastsd[cli]' (or pass a callable)"
        ) from None
    return tqdm(total=total, initial=initial, desc=desc, unit="block"), None


def run_blocks(
    blocks: Sequence[Block],
    task: Callable[[Block], _R],
    consume: Callable[[Block, _R], object],
    *,
    executor: Executor | None = None,
    skip: Iterable[int] = (),
    progress: bool | Callable[[int, int], object] = False,
    desc: str = "sweep",
) -> int:
    """Run ``task`` on every block not in ``skip``; hand each result to ``consume``.

    Parameters
    ----------
    blocks : list of Block
    task : callable
        ``task(block) -> result``; picklable for out-of-process executors.
    consume : callable
        ``consume(block, result)``, called in this process as blocks finish.
    executor : executor, optional
        From :func:`fastsd.blocks.executors.get_executor`; default in-process.
    skip : collection of int
        Indices of blocks already done (never submitted).
    progress : bool or callable
        True: a tqdm bar; a callable gets ``(blocks_done, blocks_total)`` after
        each block (an exception it raises stops the run after that block).

    Returns
    -------
    int
        Number of blocks computed by this call.
    """
    executor = InProcessExecutor() if executor is None else executor
    skip = frozenset(skip)
    todo = [b for b in blocks if b.index not in skip]
    done = len(blocks) - len(todo)
    bar, callback = _progress_bar(progress, len(blocks), done, desc)
    computed = 0
    try:
        for block, result in executor.map(task, todo):
            consume(block, result)
            del result  # never hold two blocks' results while the next one is computed
            computed += 1
            if bar is not None:
                bar.update(1)
            if callback is not None:
                callback(done + computed, len(blocks))
    finally:
        if bar is not None:
            bar.close()
    return computed
