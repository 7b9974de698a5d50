"""JIT cost of the first call, measured in a fresh Python process.

Every other benchmark excludes compilation (``setup`` makes a warm-up call).
Here a subprocess (the benchmarked environment's interpreter) imports fastsd
with ``NUMBA_CACHE_DIR`` pointing at an empty temporary directory and times
its first call on a tiny batch:

* ``track_cold_compile_seconds`` -- nothing cached: full Numba compilation;
* ``track_cached_first_call_seconds`` -- a second process on the cache the
  first one wrote: what a user pays on every new session.

Both are timed around the call alone (interpreter start, imports and the
decomposition excluded). ``decompose`` compiles nothing (BLAS/LAPACK only),
so it is not measured here.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import fastsd

OPERATIONS = ["sweep_risk", "sweep_optimal", "sweep_mse", "sweep_optimal_validation"]

SCRIPT = r"""
import json, sys, time
import numpy as np
import fastsd

op = sys.argv[1]
rng = np.random.default_rng(0)
B, n, d, L, K = 4, 30, 6, 5, 3
X = rng.standard_normal((B, n, d))
theta = rng.standard_normal((B, d))
y = np.einsum("bnd,bd->bn", X, theta) + rng.standard_normal((B, n))
X_val = rng.standard_normal((B, 10, d))
y_val = np.einsum("bnd,bd->bn", X_val, theta)
lams = np.logspace(-2, 2, L)
xis = np.linspace(0.0, 1.5, 4)
dec = fastsd.decompose(X, y)
calls = {
    "sweep_risk": lambda: fastsd.sweep_risk(dec, theta, 1.0, lams, xis, K),
    "sweep_mse": lambda: fastsd.sweep_mse(dec, None, X_val, y_val, lams, xis, K),
    "sweep_optimal": lambda: fastsd.sweep_optimal(dec, theta, 1.0, lams, K),
    "sweep_optimal_validation":
        lambda: fastsd.sweep_optimal_validation(dec, None, X_val, y_val, lams, K),
}
start = time.perf_counter()
calls[op]()
first = time.perf_counter() - start
print(json.dumps({"first_call": first}))
"""


def first_call_seconds(op, cache_dir):
    """Run SCRIPT for ``op`` in a fresh interpreter; its first-call time in seconds."""
    # The child must import the fastsd being benchmarked: under asv's
    # ASV_PYTHONPATH (scripts/asv_dashboard.py, one source tree per commit) that
    # path is on this process's sys.path but not in the child's environment.
    src = os.path.dirname(os.path.dirname(os.path.abspath(fastsd.__file__)))
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=path)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, op],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["first_call"])


class ColdCompile:
    """First call of each kernel-backed operation in a fresh process (numba backend)."""

    params = [OPERATIONS]
    param_names = ["operation"]
    processes = 1  # each sample is already a fresh process
    repeat = 1
    timeout = 900

    def setup(self, op):
        if not hasattr(fastsd, op):
            raise NotImplementedError(f"fastsd.{op} is not in this version")
        self.cache_dir = tempfile.mkdtemp(prefix="fastsd-numba-cache-")

    def teardown(self, op):
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def track_cold_compile_seconds(self, op):
        return first_call_seconds(op, self.cache_dir)

    track_cold_compile_seconds.unit = "seconds"

    def track_cached_first_call_seconds(self, op):
        first_call_seconds(op, self.cache_dir)  # compiles and fills the cache
        return first_call_seconds(op, self.cache_dir)

    track_cached_first_call_seconds.unit = "seconds"
