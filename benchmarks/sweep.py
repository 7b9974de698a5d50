"""A sweep measured as users pay (fastsd.bench.sweep).

W1's problems (n = 256, d = 64, k <= 8) from an ``.npz`` file, swept in fresh
processes: the in-memory API (load + decompose + one call on the whole grid,
no I/O: the limit), ``fastsd sweep`` in process (the store included) and
``fastsd sweep --scheduler local:2``. Size ``full``: B = 2048, the fixed-xi
sweep (L = 128, G = 16; 302 MB of results) or the oracle sweep (L = 256; 344
MB), 3 interleaved rounds after a warm-up round; ``quick``: B = 128, one round.

* ``track_sweep_vs_api``: API time / ``fastsd sweep`` time of the sweep phase
  (problems loaded -> store closed; API: decompose + sweep), the median of the
  per-round ratios (target >= 0.8);
* ``track_local2_vs_sweep``: in-process / local:2 time of the sweep phase
  (executor ready -> store closed; target >= 0.9).
"""

from fastsd.bench.sweep import measure_sweep


class SweepAsUsersPay:
    params = [["quick", "full"], ["fixed", "oracle"]]
    param_names = ["size", "sweep"]
    timeout = 1800

    def setup(self, size, sweep):
        quick = size == "quick"
        self.kw = dict(quick=quick, repeat=1 if quick else 3, warmup=not quick, sweeps=(sweep,))

    def track_sweep_vs_api(self, size, sweep):
        return measure_sweep(ways=("api", "sweep"), **self.kw)["sweeps"][sweep]["sweep_vs_api"]

    track_sweep_vs_api.unit = "API / fastsd sweep time"

    def track_local2_vs_sweep(self, size, sweep):
        res = measure_sweep(ways=("sweep", "local2"), **self.kw)
        return res["sweeps"][sweep]["local2_vs_sweep"]

    track_local2_vs_sweep.unit = "in-process / local:2 time"
