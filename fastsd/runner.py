r"""The block runner: plan a sweep as blocks, run them on an executor, store them.

Every sweep that does not fit in one call -- :func:`fastsd.sweep_risk_chunked`,
:func:`fastsd.sweep_optimal_chunked`, ``fastsd sweep CONFIG.toml`` and the Dask
path -- goes through :func:`run_blocks`:

1. :func:`plan_blocks` sizes a block (problems x lambdas) to a memory budget and
   :func:`block_grid` cuts the (problem, lambda) grid into :class:`Block`\ s;
2. an *executor* (:mod:`fastsd.executors`: in-process, or Dask) calls one
   picklable *task* per block and yields the finished blocks;
3. a *consumer* (an in-memory array, a reduction, or the Zarr
   :class:`~fastsd.store.SweepStore`) takes each finished block, in the order
   they finish.

Blocks already done (``skip``) are never submitted again, so a resumed run
computes only the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .executors import Executor

_R = TypeVar("_R")

__all__ = ["Block", "plan_blocks", "block_grid", "run_blocks"]


@dataclass(frozen=True)
class Block:
    """One unit of work: problems ``b0:b1`` x lambdas ``l0:l1``.

    ``index`` numbers the blocks of a grid in problem-major order; it names the
    block in the store (its Zarr chunk and its done-marker).
    """

    index: int
    b0: int
    b1: int
    l0: int
    l1: int


def plan_blocks(
    n_problems: int, n_lams: int, bytes_per_problem: int, bytes_per_pair: int, memory_limit: int
) -> tuple[int, int]:
    """Largest (problems, lambdas) block whose working set fits the bound.

    Parameters
    ----------
    n_problems, n_lams : int
        Size of the grid, B and L.
    bytes_per_problem : int
        Working memory of one problem independent of lambda (its decomposition).
    bytes_per_pair : int
        Working memory (result included) of one (problem, lambda) pair.
    memory_limit : int
        Bound in bytes; half of it is left as headroom for temporaries.

    Returns
    -------
    problems_per_block, lams_per_block : int
    """
    if memory_limit <= 0:
        raise ValueError(f"memory_limit must be a positive number of bytes, got {memory_limit}")
    budget = memory_limit // 2  # headroom for temporaries and the reduction
    lams_per_block = n_lams
    per_problem = bytes_per_problem + lams_per_block * bytes_per_pair
    if per_problem > budget:
        lams_per_block = max(1, (budget - bytes_per_problem) // max(bytes_per_pair, 1))
        per_problem = bytes_per_problem + lams_per_block * bytes_per_pair
        if per_problem > budget:
            raise ValueError(
                f"memory_limit={memory_limit} bytes is too small for one problem "
                f"(needs about {2 * per_problem} bytes); raise memory_limit"
            )
    problems_per_block = max(1, min(n_problems, budget // per_problem))
    return int(problems_per_block), int(lams_per_block)


def block_grid(
    n_problems: int, n_lams: int, problems_per_block: int, lams_per_block: int
) -> list[Block]:
    """The blocks of a (B, L) grid, problem-major (consecutive blocks share problems)."""
    blocks: list[Block] = []
    for b0 in range(0, n_problems, problems_per_block):
        for l0 in range(0, n_lams, lams_per_block):
            blocks.append(
                Block(
                    len(blocks),
                    b0,
                    min(n_problems, b0 + problems_per_block),
                    l0,
                    min(n_lams, l0 + lams_per_block),
                )
            )
    return blocks


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
        From :func:`fastsd.executors.get_executor`; default in-process.
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
    from .executors import InProcessExecutor

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
