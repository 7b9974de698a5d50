"""The block plan and the runner on their own (fastsd/blocks/plan.py, runner.py)."""

import threading

import numpy as np
import pytest

from fastsd.blocks.executors import InProcessExecutor, pipeline
from fastsd.blocks.plan import (
    IN_FLIGHT,
    MAX_BLOCK_RESULT,
    block_grid,
    block_memory,
    memory_needed,
    plan_blocks,
)
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
    limit = memory_needed(per_problem, per_pair, 3, 50)
    pb, lb = plan_blocks(100, 50, per_problem, per_pair, limit)
    assert lb == 50 and pb == 3
    # half of the limit is headroom, the other half holds IN_FLIGHT blocks
    assert IN_FLIGHT * pb * (per_problem + lb * per_pair) <= limit // 2
    limit = memory_needed(per_problem, per_pair, 1, 10)
    pb, lb = plan_blocks(100, 50, per_problem, per_pair, limit)
    assert (pb, lb) == (1, 10)
    with pytest.raises(ValueError, match="too small for one problem"):
        plan_blocks(100, 50, per_problem, per_pair, per_problem)
    with pytest.raises(ValueError, match="positive number of bytes"):
        plan_blocks(100, 50, per_problem, per_pair, 0)


def test_plan_caps_the_stored_result_of_a_block():
    per_problem, per_pair = block_memory(64, 16, 4, 8)
    stored = 8 * 8 * 5  # G (K + 1) float64 per pair
    pb, lb = plan_blocks(10**6, 50, per_problem, per_pair, 1 << 40, stored)
    assert lb == 50
    assert pb * lb * stored <= MAX_BLOCK_RESULT < (pb + 1) * lb * stored
    # a tighter memory limit still wins
    limit = memory_needed(per_problem, per_pair, 7, 50)
    assert plan_blocks(10**6, 50, per_problem, per_pair, limit, stored) == (7, 50)


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


class Probe:
    """A two-phase task that records when blocks are computed and written."""

    def __init__(self, n, fail_at=None, stored=(), check_overlap=True):
        self.n, self.fail_at, self.stored_blocks = n, fail_at, set(stored)
        self.check_overlap = check_overlap
        self.started = [threading.Event() for _ in range(n)]
        self.live, self.max_live, self.overlapped = set(), 0, []
        self.computed, self.written = [], []

    def stored(self, block):
        return {"block": block.index, "old": True} if block.index in self.stored_blocks else None

    def compute(self, block):
        self.started[block.index].set()
        self.live.add(block.index)
        self.max_live = max(self.max_live, len(self.live))
        self.computed.append(block.index)
        return block.index

    def write(self, block, computed):
        following = next(
            (i for i in range(block.index + 1, self.n) if i not in self.stored_blocks), None
        )
        if self.check_overlap and following is not None:  # the next one computes meanwhile
            self.overlapped.append(self.started[following].wait(timeout=30))
        self.live.discard(computed)
        if block.index == self.fail_at:
            raise OSError(f"no space left writing block {block.index}")
        self.written.append(block.index)
        return {"block": block.index}


def test_pipeline_overlaps_writes_with_compute_in_bounded_memory():
    blocks = block_grid(8, 1, 1, 1)
    probe = Probe(8, stored={3})
    got = list(pipeline(probe, blocks))
    assert [b.index for b, _ in got] == list(range(8))  # in order
    assert got[3][1] == {"block": 3, "old": True} and 3 not in probe.computed  # stored: skipped
    assert probe.written == [0, 1, 2, 4, 5, 6, 7]
    assert all(probe.overlapped) and len(probe.overlapped) == 6
    assert probe.max_live == 2  # one block written while the next is computed, no more


def test_pipeline_stops_at_a_failed_write():
    blocks = block_grid(8, 1, 1, 1)
    probe = Probe(8, fail_at=2, check_overlap=False)
    done = []
    with pytest.raises(OSError, match="writing block 2"):
        for block, _ in InProcessExecutor().map(probe, blocks):
            done.append(block.index)
    assert done == [0, 1] and 2 not in probe.written
    assert max(probe.computed) <= 3  # nothing computed past the block being written next
