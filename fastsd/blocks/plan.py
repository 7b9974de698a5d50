"""The block plan: a (problem, lambda) grid cut into blocks under a memory budget.

:func:`plan_blocks` sizes a block (problems x lambdas) to a memory budget and
:func:`block_grid` cuts the grid into :class:`Block` s, problem-major, so that
consecutive blocks share their problems.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Block", "plan_blocks", "block_grid"]


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
