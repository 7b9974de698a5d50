r"""Cost of the block runner and of the Dask executor on a W1-sized sweep.

The sweep: W1 (B = 256 problems, n = 256, d = 64, L = 128 lambdas, G = 16
constant xi, k = 0..8; see :mod:`fastsd.perf`), cut into 8 x 26 = 208 blocks
of 32 problems x 5 lambdas. Each block decomposes its problems and runs the
fixed-xi kernel, as ``fastsd sweep`` does. Timed side by side in one process,
median of ``repeat`` runs after a warm-up:

* ``loop``: a bare Python loop over the 208 blocks (decompose + kernel + copy
  into the result) -- the kernel time;
* ``runner``: the same blocks through :func:`fastsd.runner.run_blocks` with the
  in-process executor -- ``runner_overhead = runner / loop - 1`` (target <= 5%);
* ``single``: one call on the whole grid (decomposition included), the cost of
  cutting the work into blocks at all;
* ``dask_local2``: the runner on a ``LocalCluster`` of 2 worker processes x 1
  thread (task scattered once per run, results gathered and written here),
  against ``runner`` with 2 Numba threads -- ``dask_throughput_ratio =
  runner / dask_local2`` (target >= 0.8).

Run it with ``fastsd bench --runner [--dask] [--quick] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ._jit import threads as thread_count
from .decomposition import decompose
from .executors import get_executor
from .perf import machine_description, workload
from .runner import block_grid, run_blocks
from .sweep import sweep_risk
from .tasks import SweepTask

__all__ = ["measure_runner", "main"]


def _times(func, repeat):
    func()  # warm-up (JIT, caches, worker imports)
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        out.append(time.perf_counter() - start)
    return out


def _summary(times):
    return {"median_s": float(np.median(times)), "min_s": float(np.min(times)),
            "max_s": float(np.max(times)), "runs": len(times)}


def measure_runner(repeat=5, quick=False, dask=False, threads=2):
    """Time the loop, the runner, one call, and (``dask=True``) Dask local:2.

    Parameters
    ----------
    repeat : int
        Timed runs per measurement (median reported, with min and max).
    quick : bool
        B = 32 (8 problems per block, 4 x 26 = 104 blocks) instead of 256.
    dask : bool
        Also time the Dask executor on a LocalCluster of 2 x 1 thread.
    threads : int
        Numba threads of the in-process runs.

    Returns
    -------
    dict
    """
    w = workload(B=32 if quick else 256)
    X, theta, var, lams, xis, K = (w[k] for k in ("X", "theta", "noise_var", "lams", "xis", "K"))
    B = X.shape[0]
    pb, lb = (8 if quick else 32), 5
    blocks = block_grid(B, lams.size, pb, lb)
    schedules = np.repeat(xis[:, None], K, axis=1)
    out = np.empty((B, lams.size, xis.size, K + 1))

    def consume(block, result):
        out[block.b0:block.b1, block.l0:block.l1] = result["risk"]

    def loop():
        current = None
        for blk in blocks:
            if current is None or current[0] != blk.b0:
                current = (blk.b0, decompose(X[blk.b0:blk.b1]))
            out[blk.b0:blk.b1, blk.l0:blk.l1] = sweep_risk(
                current[1], theta[blk.b0:blk.b1], var[blk.b0:blk.b1], lams[blk.l0:blk.l1],
                schedules, K)

    def runner(executor=None, task_threads=None):
        task = SweepTask("risk", X, lams, K, schedules=schedules, theta_star=theta,
                         noise_var=var, threads=task_threads)
        run_blocks(blocks, task, consume, executor=executor)

    def single():
        sweep_risk(decompose(X), theta, var, lams, xis, K)

    res = {"B": B, "L": lams.size, "G": xis.size, "K": K, "blocks": len(blocks),
           "threads": threads, "repeat": repeat}
    with thread_count(threads):
        want = None
        for name, func in (("loop", loop), ("runner", runner), ("single", single)):
            res[name] = _summary(_times(func, repeat))
            if name == "loop":
                want = out.copy()
            elif name == "runner":
                assert np.array_equal(out, want), "runner and loop disagree"
    res["runner_overhead"] = res["runner"]["median_s"] / res["loop"]["median_s"] - 1
    res["blocking_cost"] = res["runner"]["median_s"] / res["single"]["median_s"] - 1
    if dask:
        with get_executor(scheduler="local:2") as executor:
            res["dask_local2"] = _summary(_times(lambda: runner(executor), repeat))
        res["dask_throughput_ratio"] = (res["runner"]["median_s"]
                                        / res["dask_local2"]["median_s"])
    res["machine"] = machine_description()
    return res


def format_runner_table(res):
    """Markdown table of a :func:`measure_runner` result."""
    def cell(name):
        s = res[name]
        return f"{s['median_s']:.3f} s ({s['min_s']:.3f}-{s['max_s']:.3f})"

    rows = [("bare loop over the blocks (kernel time)", cell("loop"), ""),
            ("block runner, in-process", cell("runner"),
             f"overhead {100 * res['runner_overhead']:+.1f}% (target <= 5%)"),
            ("one call on the whole grid", cell("single"),
             f"blocking costs {100 * res['blocking_cost']:+.1f}%")]
    if "dask_local2" in res:
        rows.append(("Dask local:2 (2 workers x 1 thread)", cell("dask_local2"),
                     f"{res['dask_throughput_ratio']:.2f}x in-process throughput "
                     "(target >= 0.8x)"))
    head = (f"W1-sized sweep: B={res['B']}, L={res['L']}, G={res['G']}, K={res['K']}, "
            f"{res['blocks']} blocks, {res['threads']} Numba threads in-process; median "
            f"(min-max) of {res['repeat']} runs; {res['machine']}\n\n")
    lines = ["| measurement | time | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return head + "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastsd bench --runner",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--quick", action="store_true", help="B = 32 instead of 256")
    parser.add_argument("--dask", action="store_true",
                        help="also time Dask local:2 (needs fastsd[dask])")
    parser.add_argument("--threads", type=int, default=2, help="in-process Numba threads")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    res = measure_runner(repeat=args.repeat, quick=args.quick, dask=args.dask,
                         threads=args.threads)
    print(format_runner_table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
