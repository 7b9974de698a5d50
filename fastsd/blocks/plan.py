"""The block plan: a (problem, lambda) grid cut into blocks under a memory budget.

:func:`plan_blocks` sizes a block (problems x lambdas) to a memory budget and
:func:`block_grid` cuts the grid into :class:`Block` s, problem-major, so that
consecutive blocks share their problems.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "IN_FLIGHT",
    "MAX_BLOCK_RESULT",
    "Block",
    "block_grid",
    "block_memory",
    "memory_needed",
    "plan_blocks",
]


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


def block_memory(
    n: int,
    d: int,
    max_steps: int,
    schedules: int | None,
    *,
    n_eval: int = 0,
    metrics: int = 1,
    stored: int = 0,
    backend: str = "numba",
) -> tuple[int, int]:
    """The memory model of a block: (bytes per problem, bytes per (problem, lambda) pair).

    Parameters
    ----------
    n, d : int
        Shape of one design.
    max_steps : int
        K.
    schedules : int or None
        G for a fixed-xi sweep, None for an optimal-xi one.
    n_eval : int, default=0
        Evaluation rows per problem (validation + test).
    metrics : int, default=1
        Result arrays of the kind per pair (risk, or val_mse [+ test_mse]).
    stored : int, default=0
        Bytes per pair of the stored layout (the consumer's copy of the block).
    backend : {"numba", "numpy"}

    Returns
    -------
    per_problem : int
        X (n d), the decomposition and the side formed on first use (2 (n + d) p),
        the Gram matrix (d^2) and the projected evaluation rows (n_eval (d + p)),
        float64, p = min(n, d).
    per_pair : int
        The task's result (G (K + 1) per metric for fixed xi, K + 1 per metric and
        K^2 for the optimal xi), the stored copy, and the NumPy reference's
        temporaries (8 G p or 8 K (p + K) per pair).
    """
    K, p = max_steps, min(n, d)
    per_problem = 8 * (n * d + 2 * (n + d) * p + d * d + n_eval * (d + p))
    if schedules is not None:
        result = metrics * schedules * (K + 1)
        temporaries = 8 * schedules * p
    else:
        result = metrics * (K + 1) + K * K
        temporaries = 8 * K * (p + K)
    per_pair = 8 * result + stored + (8 * temporaries if backend == "numpy" else 0)
    return per_problem, per_pair


#: Blocks alive at once in a run: one being computed and one being written.
IN_FLIGHT = 2
#: Largest stored result of one block (one Zarr chunk per variable together), in
#: bytes. Readers work chunk by chunk, so their memory is bounded by this whatever
#: the size of the store; and a grid of this many bytes per block still has enough
#: blocks to keep Dask workers busy and to overlap writes with compute.
MAX_BLOCK_RESULT = 16 << 20


def memory_needed(per_problem: int, per_pair: int, problems: int = 1, lams: int = 1) -> int:
    """The ``memory_limit`` that fits blocks of ``problems`` x ``lams``: half of it is
    headroom for temporaries, the other half holds IN_FLIGHT blocks."""
    return 2 * IN_FLIGHT * problems * (per_problem + lams * per_pair)


def plan_blocks(
    n_problems: int,
    n_lams: int,
    bytes_per_problem: int,
    bytes_per_pair: int,
    memory_limit: int,
    stored_per_pair: int = 0,
) -> tuple[int, int]:
    """Largest (problems, lambdas) block whose working set fits the bound.

    A block takes every lambda (one decomposition per problem range) unless one
    problem with all of them does not fit; then as many lambdas as fit. Its
    problems are as many as fit in the budget, and no more than keep its stored
    result under :data:`MAX_BLOCK_RESULT`.

    Parameters
    ----------
    n_problems, n_lams : int
        Size of the grid, B and L.
    bytes_per_problem : int
        Working memory of one problem independent of lambda (its decomposition).
    bytes_per_pair : int
        Working memory (result included) of one (problem, lambda) pair.
    memory_limit : int
        Bound in bytes: half of it is headroom for temporaries, the other half
        holds :data:`IN_FLIGHT` blocks (see :func:`memory_needed`).
    stored_per_pair : int, default=0
        Bytes of the stored result of one pair (0: no cap from the stored size).

    Returns
    -------
    problems_per_block, lams_per_block : int
    """
    if memory_limit <= 0:
        raise ValueError(f"memory_limit must be a positive number of bytes, got {memory_limit}")
    budget = memory_limit // 2 // IN_FLIGHT
    lams_per_block = n_lams
    per_problem = bytes_per_problem + lams_per_block * bytes_per_pair
    if per_problem > budget:
        lams_per_block = max(1, (budget - bytes_per_problem) // max(bytes_per_pair, 1))
        per_problem = bytes_per_problem + lams_per_block * bytes_per_pair
        if per_problem > budget:
            raise ValueError(
                f"memory_limit={memory_limit} bytes is too small for one problem "
                f"(needs about {memory_needed(bytes_per_problem, bytes_per_pair)} bytes); "
                "raise memory_limit"
            )
    problems_per_block = max(1, min(n_problems, budget // per_problem))
    if stored_per_pair > 0:
        cap = MAX_BLOCK_RESULT // (lams_per_block * stored_per_pair)
        problems_per_block = max(1, min(problems_per_block, cap))
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
