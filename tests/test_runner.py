"""The block plan and the runner on their own (fastsd/blocks/plan.py, runner.py)."""

import numpy as np
import pytest

from fastsd.blocks.plan import block_grid, block_memory, plan_blocks
from fastsd.blocks.runner import run_blocks


@pytest.mark.parametrize("B,L,pb,lb", [(1, 1, 1, 1), (7, 5, 3, 2), (8, 26, 8, 26), (10, 3, 4, 5)])
def test_block_grid_covers_the_grid_once_problem_major(B, L, pb, lb):
    blocks = block_grid(B, L, pb, lb)
    seen = np.zeros((B, L), dtype=int)
    for i, blk in enumerate(blocks):
        assert blk.index == i
        assert 0 <= blk.b0 < blk.b1 <= B and 0 <= blk.l0 < blk.l1 <= L
        seen[blk.b0 : blk.b1, blk.l0 : blk.l1] += 1
    assert (seen == 1).all()
    starts = [blk.b0 for blk in blocks]
    assert starts == sorted(starts)  # consecutive blocks share their problems


def test_plan_respects_the_budget_and_splits_lambdas_only_when_needed():
    per_problem, per_pair = block_memory(64, 16, 4, 8)
    pb, lb = plan_blocks(100, 50, per_problem, per_pair, 1 << 30)
    assert lb == 50 and pb == 100  # everything fits: one block
    limit = 2 * (per_problem + 50 * per_pair) * 3
    pb, lb = plan_blocks(100, 50, per_problem, per_pair, limit)
    assert lb == 50 and pb == 3
    assert pb * (per_problem + lb * per_pair) <= limit // 2
    limit = 2 * (per_problem + 10 * per_pair)
    pb, lb = plan_blocks(100, 50, per_problem, per_pair, limit)
    assert (pb, lb) == (1, 10)
    with pytest.raises(ValueError, match="too small for one problem"):
        plan_blocks(100, 50, per_problem, per_pair, per_problem)
    with pytest.raises(ValueError, match="positive number of bytes"):
        plan_blocks(100, 50, per_problem, per_pair, 0)


def test_block_memory_grows_with_every_size():
    base = block_memory(100, 20, 4, 8)
    assert block_memory(200, 20, 4, 8)[0] > base[0]
    assert block_memory(100, 20, 8, 8)[1] > base[1]
    assert block_memory(100, 20, 4, 16)[1] > base[1]
    assert block_memory(100, 20, 4, 8, n_eval=50)[0] > base[0]
    assert block_memory(100, 20, 4, 8, backend="numpy")[1] > base[1]
    assert block_memory(100, 20, 4, 8, stored=1000)[1] == base[1] + 1000
    optimal = block_memory(100, 20, 4, None)
    assert optimal[1] == 8 * (4 + 1 + 4 * 4)


def test_run_blocks_skips_done_blocks_and_reports_progress():
    blocks = block_grid(4, 3, 2, 1)
    got, calls = {}, []
    computed = run_blocks(
        blocks,
        lambda blk: blk.index * 10,
        lambda blk, res: got.__setitem__(blk.index, res),
        skip={0, 3},
        progress=lambda done, total: calls.append((done, total)),
    )
    assert computed == len(blocks) - 2
    assert got == {i: 10 * i for i in range(len(blocks)) if i not in (0, 3)}
    assert calls == [(d, len(blocks)) for d in range(3, len(blocks) + 1)]


def test_an_exception_from_progress_stops_after_that_block():
    blocks = block_grid(5, 1, 1, 1)
    got = []

    def stop(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_blocks(blocks, lambda blk: blk.index, lambda blk, res: got.append(res), progress=stop)
    assert got == [0, 1]
