"""Readers in bounded memory: ``fastsd export`` and ``fastsd plot`` on stores 4x apart.

Two oracle stores with the layout and block plan of a sweep of d = 32, n = 64,
64 lambdas, k <= 8 -- 5 000 and 20 000 problems (830 MB of results) -- are
written block by block with the store's own writer (the values are synthetic:
the readers' memory does not depend on them, and computing 1.3 M optimal-xi
pairs would cost the suite minutes). Each command runs in a fresh process that
reports its peak resident memory (``VmHWM``): it must not grow with the store
(<= 20% apart) and must stay under 500 MB.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("xarray")
pytest.importorskip("pyarrow")
pytest.importorskip("matplotlib")

from fastsd.blocks.plan import block_grid, block_memory, plan_blocks  # noqa: E402
from fastsd.store.layout import coordinates, layout, store_values  # noqa: E402
from fastsd.store.writer import SweepStore  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Runs the CLI, then prints its peak resident memory in KiB on stderr: VmHWM, the high-water
#: mark of this process's own memory (ru_maxrss would also count the parent's, inherited
#: through exec after a vfork).
PEAK = """
import resource, sys
from fastsd.cli import main
code = main(sys.argv[1:])
try:
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("PEAK", peak, file=sys.stderr)
sys.exit(code)
"""


def build_store(out, B, n=64, d=32, L=64, K=8):
    """An oracle store of B problems, chunked by the planner as ``fastsd sweep`` would."""
    variables = layout("optimal", B, L, K)
    per_pair = 8 * (K + 1) + 8 * (K + 1) * K + (K + 1)
    per_problem, work = block_memory(n, d, K, None, stored=per_pair)
    pb, lb = plan_blocks(B, L, per_problem, work, 1 << 30, per_pair)
    coords = coordinates(
        B,
        np.logspace(-3, 3, L),
        K,
        problem_coords={"rank": np.arange(B) % 7 + 2, "noise_var": np.full(B, 0.5)},
    )
    manifest = {"config": {}, "plan": {"kind": "optimal", "chunks": [pb, lb]}}
    store = SweepStore.create(str(out), manifest, variables, coords, (pb, lb), {"kind": "optimal"})
    rng = np.random.default_rng(0)
    xi = rng.normal(size=(pb, lb, K, K))
    xi[:, ::5, 3] = np.nan  # some unrecoverable schedules
    values = store_values("optimal", {"risk": rng.random((pb, lb, K + 1)) + 0.1, "xi": xi})
    for blk in block_grid(B, L, pb, lb):
        store.write(blk, {k: v[: blk.b1 - blk.b0, : blk.l1 - blk.l0] for k, v in values.items()})
    store.finish()
    return out


def peak_mb(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stderr.splitlines() if x.startswith("PEAK")][-1]
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_export_and_plot_memory_does_not_grow_with_the_store(tmp_path, capsys):
    peaks = {}
    for B in (5_000, 20_000):
        store = build_store(tmp_path / f"s{B}", B)
        parquet = tmp_path / f"s{B}.parquet"
        peaks["export", B] = peak_mb("export", store, "--format", "parquet", "--to", parquet)
        peaks["plot", B] = peak_mb("plot", store, "--to", tmp_path / f"fig{B}")
        import pyarrow.parquet as pq

        assert pq.ParquetFile(parquet).metadata.num_rows == B * 64 * 9
    with capsys.disabled():
        print("\npeak RSS, MB: " + ", ".join(f"{c} {B}: {m:.0f}" for (c, B), m in peaks.items()))
    for command in ("export", "plot"):
        small, large = peaks[command, 5_000], peaks[command, 20_000]
        assert large <= 1.2 * small, (command, small, large)
        assert large <= 500, (command, large)
