r"""Cost of the block runner and of the Dask executor on a W1-sized sweep.

The sweep: W1 (B = 256 problems, n = 256, d = 64, L = 128 lambdas, G = 16
constant xi, k = 0..8; see :mod:`fastsd.bench.kernels`), cut into blocks by the
planner as ``fastsd sweep`` cuts it (:func:`fastsd.blocks.plan.plan_blocks`,
default memory limit: every lambda, at most 16 MiB of results a block -- 3
blocks of up to 113 problems). Each block decomposes its problems and runs the
fixed-xi kernel, as ``fastsd sweep`` does. Timed side by side in one process,
median of ``repeat`` runs after a warm-up:

* ``loop``: a bare Python loop over the blocks (decompose + kernel + copy
  into the result) -- the kernel time;
* ``runner``: the same blocks through :func:`fastsd.blocks.runner.run_blocks` with the
  in-process executor -- ``runner_overhead = runner / loop - 1`` (target <= 5%);

The measurements run interleaved (loop, runner, single, loop, ...) and each
ratio is the median of the per-round ratios, so that a load drifting on a
shared machine cancels.

* ``bookkeeping``: the runner with a no-op task and consumer: its own cost per
  block, which load on a shared machine barely blurs;
* ``single``: one call on the whole grid (decomposition included):
  ``blocking_cost = runner / single - 1`` is the cost of cutting the work into
  blocks at all (target <= 10%);
* ``dask_local2``: the runner on a ``LocalCluster`` of 2 worker processes x 1
  thread (each task carries its own problems; results come back and are copied here;
  Dask's workers run BLAS single-threaded, and so do the in-process runs here:
  BLAS threads spinning next to Numba's on a loaded machine blur every number),
  against ``runner`` with 2 Numba threads -- ``dask_throughput_ratio =
  runner / dask_local2`` (target >= 0.8).

Run it with ``fastsd bench --runner [--dask] [--quick] [--repeat N]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .._argparse import OneLineParser
from .._jit import threads as thread_count
from ..blocks.executors import get_executor
from ..blocks.plan import block_grid, block_memory, plan_blocks
from ..blocks.runner import run_blocks
from ..blocks.tasks import SweepTask
from ..decomposition import decompose
from ..decomposition.lapack import blas_threads
from ..engine.grids import constant_schedules
from ..engine.sweeps import sweep_risk
from .kernels import check_json, machine_description, workload, write_json

if TYPE_CHECKING:
    from ..blocks.executors import DaskExecutor, InProcessExecutor
    from ..blocks.plan import Block

__all__ = ["RunnerSweep", "measure_runner", "main"]


def _times(func: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """(wall, cpu) seconds of ``repeat`` calls after a warm-up (JIT, caches, imports)."""
    func()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        func()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def _interleaved(
    funcs: list[Callable[[], object]],
    repeat: int,
) -> list[tuple[list[float], list[float]]]:
    """``_times`` of several functions run in turn (order rotating each round), so that a
    load that drifts on a shared machine hits all of them alike."""
    for func in funcs:
        func()
    out: list[tuple[list[float], list[float]]] = [([], []) for _ in funcs]
    for i in range(repeat):
        for j in np.roll(np.arange(len(funcs)), i):
            start, start_cpu = time.perf_counter(), time.process_time()
            funcs[j]()
            out[j][0].append(time.perf_counter() - start)
            out[j][1].append(time.process_time() - start_cpu)
    return out


def _ratio(
    a: tuple[list[float], list[float]],
    b: tuple[list[float], list[float]],
    clock: int = 0,
) -> float:
    """Median over rounds of a_i / b_i (paired, robust to drifting load); clock 0 is wall
    time, 1 the CPU time of this process."""
    return float(np.median(np.asarray(a[clock]) / np.asarray(b[clock])))


def _summary(times: tuple[list[float], list[float]]) -> dict[str, float]:
    wall, cpu = times
    return {
        "median_s": float(np.median(wall)),
        "min_s": float(np.min(wall)),
        "max_s": float(np.max(wall)),
        "cpu_median_s": float(np.median(cpu)),
        "runs": len(wall),
    }


class RunnerSweep:
    """The W1-sized sweep of this module, cut into blocks (shared with the asv suite).

    Parameters
    ----------
    B : int
        Problems: 256 (W1) or fewer.
    memory_limit : int, default=1 GiB
        The planner's budget (``run.memory_limit``).
    """

    def __init__(self, B: int = 256, memory_limit: int = 1 << 30) -> None:
        w = workload(B=B)
        self.X, self.theta, self.var = w["X"], w["theta"], w["noise_var"]
        self.lams, self.xis, self.K = w["lams"], w["xis"], w["K"]
        n, d = self.X.shape[1:]
        stored = 8 * self.xis.size * (self.K + 1)
        per_problem, per_pair = block_memory(n, d, self.K, self.xis.size, stored=stored)
        plan = plan_blocks(B, self.lams.size, per_problem, per_pair, memory_limit, stored)
        self.blocks = block_grid(B, self.lams.size, *plan)
        self.schedules = constant_schedules(self.xis, self.K)
        self.out = np.empty((B, self.lams.size, self.xis.size, self.K + 1))

    def loop(self) -> None:
        """Bare loop over the blocks: decompose (once per problem block) + kernel + copy."""
        current: tuple[int, Any] | None = None
        for blk in self.blocks:
            if current is None or current[0] != blk.b0:
                current = (blk.b0, decompose(self.X[blk.b0 : blk.b1]))
            self.out[blk.b0 : blk.b1, blk.l0 : blk.l1] = sweep_risk(
                current[1],
                self.theta[blk.b0 : blk.b1],
                self.var[blk.b0 : blk.b1],
                self.lams[blk.l0 : blk.l1],
                self.schedules,
                self.K,
            )

    def _consume(self, block: Block, result: Mapping[str, NDArray[np.float64]]) -> None:
        self.out[block.b0 : block.b1, block.l0 : block.l1] = result["risk"]

    def runner(self, executor: InProcessExecutor | DaskExecutor | None = None) -> None:
        """The same blocks through :func:`fastsd.blocks.runner.run_blocks`."""
        task = SweepTask(
            "risk",
            self.X,
            self.lams,
            self.K,
            schedules=self.schedules,
            theta_star=self.theta,
            noise_var=self.var,
        )
        run_blocks(self.blocks, task, self._consume, executor=executor)

    def bookkeeping(self) -> None:
        """The runner with the work taken out: a no-op task and a no-op consumer."""
        run_blocks(self.blocks, lambda block: None, lambda block, result: None)

    def single(self) -> NDArray[np.float64]:
        """One call on the whole grid (decomposition included)."""
        return sweep_risk(decompose(self.X), self.theta, self.var, self.lams, self.xis, self.K)


def measure_runner(
    repeat: int = 5, quick: bool = False, dask: bool = False, threads: int = 2
) -> dict[str, Any]:
    """Time the loop, the runner, one call, and (``dask=True``) Dask local:2.

    Parameters
    ----------
    repeat : int
        Timed runs per measurement (median reported, with min and max).
    quick : bool
        B = 32 instead of 256.
    dask : bool
        Also time the Dask executor on a LocalCluster of 2 x 1 thread.
    threads : int
        Numba threads of the in-process runs.

    Returns
    -------
    dict
    """
    sweep = RunnerSweep(B=32 if quick else 256)
    res: dict[str, Any] = {
        "B": sweep.X.shape[0],
        "L": sweep.lams.size,
        "G": sweep.xis.size,
        "K": sweep.K,
        "blocks": len(sweep.blocks),
        "threads": threads,
        "repeat": repeat,
    }
    with thread_count(threads), blas_threads(1):
        sweep.loop()
        want = sweep.out.copy()
        loop, runner, single = _interleaved([sweep.loop, sweep.runner, sweep.single], repeat)
        if not np.array_equal(sweep.out, want):
            raise AssertionError("runner and loop disagree")
    res.update(loop=_summary(loop), runner=_summary(runner), single=_summary(single))
    res["runner_overhead"] = _ratio(runner, loop) - 1
    # CPU time: with 1 thread, what the process did, whatever else the machine runs
    res["runner_overhead_cpu"] = _ratio(runner, loop, clock=1) - 1
    res["runner_overhead_best"] = min(runner[0]) / min(loop[0]) - 1
    res["bookkeeping"] = _summary(_times(sweep.bookkeeping, repeat))
    res["bookkeeping_per_block_us"] = 1e6 * res["bookkeeping"]["median_s"] / len(sweep.blocks)
    res["bookkeeping_fraction"] = res["bookkeeping"]["median_s"] / res["loop"]["median_s"]
    res["blocking_cost"] = _ratio(runner, single) - 1
    if dask:
        with get_executor(scheduler="local:2") as executor:

            def in_process() -> None:
                with thread_count(threads), blas_threads(1):
                    sweep.runner()

            inproc, dask_times = _interleaved([in_process, lambda: sweep.runner(executor)], repeat)
        if not np.array_equal(sweep.out, want):
            raise AssertionError("Dask and in-process runs disagree")
        res["dask_local2"] = _summary(dask_times)
        res["in_process_paired"] = _summary(inproc)
        res["dask_throughput_ratio"] = _ratio(inproc, dask_times)
    res["machine"] = machine_description()
    return res


def format_runner_table(res: Mapping[str, Any]) -> str:
    """Markdown table of a :func:`measure_runner` result."""

    def cell(name: str) -> str:
        s = res[name]
        return f"{s['median_s']:.4g} s ({s['min_s']:.4g}-{s['max_s']:.4g})"

    rows = [
        ("bare loop over the blocks (kernel time)", cell("loop"), ""),
        (
            "block runner, in-process",
            cell("runner"),
            f"overhead {100 * res['runner_overhead']:+.1f}% wall, "
            f"{100 * res['runner_overhead_cpu']:+.1f}% CPU, "
            f"{100 * res['runner_overhead_best']:+.1f}% best-of (target <= 5%)",
        ),
        (
            "runner bookkeeping alone (no-op task and consumer)",
            cell("bookkeeping"),
            f"{res['bookkeeping_per_block_us']:.2f} us per block = "
            f"{100 * res['bookkeeping_fraction']:.3f}% of the kernel time",
        ),
        (
            "one call on the whole grid",
            cell("single"),
            f"blocking costs {100 * res['blocking_cost']:+.1f}% (target <= 10%)",
        ),
    ]
    if "dask_local2" in res:
        rows.append(("block runner, in-process, paired with Dask", cell("in_process_paired"), ""))
        rows.append(
            (
                "Dask local:2 (2 workers x 1 thread)",
                cell("dask_local2"),
                f"{res['dask_throughput_ratio']:.2f}x in-process throughput (target >= 0.8x)",
            )
        )
    head = (
        f"W1-sized sweep: B={res['B']}, L={res['L']}, G={res['G']}, K={res['K']}, "
        f"{res['blocks']} blocks, {res['threads']} Numba threads in-process; median "
        f"(min-max) of {res['repeat']} interleaved runs, ratios as medians of the "
        f"paired ratios; {res['machine']}\n\n"
    )
    lines = ["| measurement | time | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return head + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``fastsd bench --runner``: measure the block runner (and Dask) and print the table."""
    parser = OneLineParser(prog="fastsd bench --runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--quick", action="store_true", help="B = 32 instead of 256")
    parser.add_argument(
        "--dask", action="store_true", help="also time Dask local:2 (needs fastsd[dask])"
    )
    parser.add_argument("--threads", type=int, default=2, help="in-process Numba threads")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    check_json(parser, args)
    res = measure_runner(repeat=args.repeat, quick=args.quick, dask=args.dask, threads=args.threads)
    print(format_runner_table(res))
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
