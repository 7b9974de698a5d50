"""The block runner and the Dask executor on a W1-sized sweep (fastsd.bench.runner).

``BlockRunner``: the W1 sweep (L = 128, G = 16, K = 8) cut into blocks by the
planner as ``fastsd sweep`` cuts it (B = 256: 3 blocks of up to 113 problems x
all lambdas), through the in-process runner against a bare loop over the same
blocks; ``track_runner_ratio`` is runner / loop time (target <= 1.05) and
``track_blocking_cost`` runner / one call on the whole grid (target <= 1.1). ``DaskLocal2``: the same blocks on a
``distributed.LocalCluster`` of 2 workers x 1 thread against the in-process
runner with 2 Numba threads; ``track_throughput_vs_in_process`` is in-process
/ Dask time (target >= 0.8). Both ratios are medians of interleaved pairs.
"""

from fastsd._jit import threads
from fastsd.bench.runner import RunnerSweep, _interleaved, _ratio

#: problems: a smoke-test size and W1
RUNNER_SIZES = [8, 256]


class BlockRunner:
    params = [RUNNER_SIZES]
    param_names = ["B"]
    timeout = 600

    def setup(self, B):
        self.sweep = RunnerSweep(B)
        with threads(2):
            self.sweep.runner()  # JIT and caches

    def time_loop(self, B):
        with threads(2):
            self.sweep.loop()

    def time_runner(self, B):
        with threads(2):
            self.sweep.runner()

    def track_runner_ratio(self, B):
        with threads(2):
            runner, loop = _interleaved([self.sweep.runner, self.sweep.loop], 3)
        return _ratio(runner, loop)

    track_runner_ratio.unit = "runner / loop"

    def track_blocking_cost(self, B):
        with threads(2):
            runner, single = _interleaved([self.sweep.runner, self.sweep.single], 3)
        return _ratio(runner, single)

    track_blocking_cost.unit = "runner / one call"


class DaskLocal2:
    params = [RUNNER_SIZES]
    param_names = ["B"]
    timeout = 600

    def setup(self, B):
        try:
            from fastsd.blocks.executors import get_executor

            self.executor = get_executor(scheduler="local:2")
        except ImportError as exc:
            raise NotImplementedError(f"needs fastsd[dask]: {exc}") from None
        self.sweep = RunnerSweep(B)

    def teardown(self, B):
        self.executor.close()

    def track_throughput_vs_in_process(self, B):
        def in_process():
            with threads(2):
                self.sweep.runner()

        inproc, dask = _interleaved([in_process, lambda: self.sweep.runner(self.executor)], 3)
        return _ratio(inproc, dask)

    track_throughput_vs_in_process.unit = "in-process / Dask time"
