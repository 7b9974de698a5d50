r"""A sweep measured as users pay: the API, ``fastsd sweep`` in process, and ``--scheduler local:2``.

Two sweeps on W1's problems (n = 256, d = 64, L lambdas, k <= 8) from an
``.npz`` file written by ``np.savez``:

* ``fixed``: B = 2048 problems, L = 128, G = 16 constant xi (302 MB of results);
* ``oracle``: the same problems, L = 256, the optimal xi (344 MB of results).

(``quick``: B = 128, the same grids.) Each sweep runs three ways, each in a
fresh process (``python -c`` / ``python -m fastsd``), as a user runs it:

* ``api``: ``np.load`` of the file, :func:`fastsd.decompose` and one
  :func:`fastsd.sweep_risk` / :func:`fastsd.sweep_optimal` call on the whole
  grid, in memory, no I/O -- the limit;
* ``sweep``: ``fastsd sweep CONFIG`` in process, the store included;
* ``local2``: ``fastsd sweep CONFIG --scheduler local:2`` (2 worker processes
  x 1 thread, started by the command).

Each process reports when its imports were done and its problems loaded, and
(the CLI, in the store's manifest) when its executor was ready and its store
closed. A run's time splits into *start-up* (interpreter and imports), *load*
(problems loaded: the API reads the file, the CLI memory-maps it), *cluster*
(local:2: workers started) and the *sweep phase* (API: decompose + sweep; CLI:
executor ready -> store closed). The ratios compare sweep phases: in-process
/ API (target >= 0.8) and local:2 / in-process (target >= 0.9) throughput.

The three ways of both sweeps run interleaved (the order rotating each round)
after a warm-up round; medians and ranges of ``repeat`` rounds, ratios as
medians of the per-round ratios. The disk's plain write speed for the same
bytes (files of one block's size, the I/O floor) and the compression ratio and
speed of candidate Zarr codecs on the stored results are measured in the same
run. Run it with ``fastsd bench --sweep [--quick] [--repeat N] [--dir DIR]``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._argparse import OneLineParser
from ..store.manifest import load_manifest
from .kernels import check_json, machine_description, workload, write_json

__all__ = ["SWEEPS", "WAYS", "SweepBench", "measure_sweep", "format_sweep", "main"]

#: sweep -> (selection, L); both on the same problems.
SWEEPS: dict[str, tuple[str, int]] = {"fixed": ("fixed", 128), "oracle": ("oracle", 256)}
WAYS = ("api", "sweep", "local2")
#: Problems of the full and the quick run.
FULL_B, QUICK_B = 2048, 128

_API = r"""
import json, sys, time
import numpy as np
import fastsd
imported = time.time()
path, kind, out = sys.argv[1:4]
with open(out) as f:
    grid = json.load(f)
with np.load(path) as data:
    X, theta, var = data["X"], data["theta_star"], data["noise_var"]
loaded = time.time()
dec = fastsd.decompose(X)
if kind == "fixed":
    result = fastsd.sweep_risk(dec, theta, var, grid["lams"], grid["xis"], grid["K"])
else:
    import warnings
    warnings.simplefilter("ignore")
    result = fastsd.sweep_optimal(dec, theta, var, grid["lams"], grid["K"])
done = time.time()
with open(out, "w") as f:
    json.dump({"imported": imported, "loaded": loaded, "done": done}, f)
"""


def _child(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> None:
    """Run one measured process; its output is dropped (the oracle sweeps' expected
    unrecoverable-xi warning included) unless it fails."""
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}: {tail[0]}")


class SweepBench:
    """The npz file, configs and commands of this benchmark, in ``directory``.

    Parameters
    ----------
    directory : str
        Where the problems, configs and stores go (the disk under test).
    B : int
        Problems.
    """

    def __init__(self, directory: str, B: int = FULL_B) -> None:
        self.directory = os.path.abspath(directory)
        self.B = B
        w = workload(B=B, L=max(L for _, L in SWEEPS.values()))
        self.K = int(w["K"])
        self.xis = [float(x) for x in w["xis"]]
        self.npz = os.path.join(self.directory, "problems.npz")
        os.makedirs(self.directory, exist_ok=True)
        np.savez(self.npz, X=w["X"], theta_star=w["theta"], noise_var=w["noise_var"])
        self.lams = {name: np.logspace(-4, 4, L).tolist() for name, (_, L) in SWEEPS.items()}
        self.configs = {name: self._config(name) for name in SWEEPS}

    def _config(self, name: str) -> str:
        selection, _ = SWEEPS[name]
        path = os.path.join(self.directory, f"{name}.toml")
        lines = [
            "[problems]",
            'source = "npz"',
            f"path = {json.dumps(self.npz)}",
            "[grid]",
            f"lams = {json.dumps(self.lams[name])}",
            f"max_steps = {self.K}",
        ]
        if selection == "fixed":
            lines.append(f"xis = {json.dumps(self.xis)}")
        lines += ["[run]", f'selection = "{selection}"', f'output = "{name}-out"']
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def output(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}-out")

    def run(self, name: str, way: str) -> dict[str, float]:
        """One fresh process of ``way`` on sweep ``name``: its phases in seconds of wall time,
        and ``cpu``, the CPU seconds of the process and the processes it started."""
        before = _children_cpu()
        phases = self._run(name, way)
        phases["cpu"] = _children_cpu() - before
        return phases

    def _run(self, name: str, way: str) -> dict[str, float]:
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        if way != "api":  # a new sweep, as a user's first run (not timed: removing the last)
            shutil.rmtree(self.output(name), ignore_errors=True)
        spawn = time.time()
        if way == "api":
            grid = os.path.join(self.directory, f"{name}-grid.json")
            with open(grid, "w") as f:
                json.dump({"lams": self.lams[name], "xis": self.xis, "K": self.K}, f)
            cmd = [sys.executable, "-c", _API, self.npz, name, grid]
            _child(cmd, env)
            end = time.time()
            with open(grid) as f:
                t = json.load(f)
            return {
                "process": end - spawn,
                "startup": t["imported"] - spawn,
                "load": t["loaded"] - t["imported"],
                "cluster": 0.0,
                "phase": t["done"] - t["loaded"],
            }
        cmd = [sys.executable, "-m", "fastsd", "sweep", self.configs[name], "--no-progress"]
        cmd += ["--scheduler", "local:2"] if way == "local2" else []
        _child(cmd, env, cwd=self.directory)
        end = time.time()
        t = load_manifest(self.output(name))["last_run"]
        return {
            "process": end - spawn,
            "startup": t["started"] - spawn,
            "load": t["problems_loaded"] - t["started"],
            "cluster": t["executor_ready"] - t["problems_loaded"],
            "phase": t["store_closed"] - t["executor_ready"],
        }

    def output_bytes(self, name: str) -> int:
        return int(load_manifest(self.output(name))["plan"]["output_bytes"])

    def disk_floor(self, name: str) -> dict[str, float]:
        """Plain writes of the sweep's result bytes, in files of one block's size."""
        plan = load_manifest(self.output(name))["plan"]
        total, blocks = int(plan["output_bytes"]), int(plan["blocks"])
        size = -(-total // blocks)
        data = np.random.default_rng(0).random(size // 8 + 1).tobytes()[:size]
        where = os.path.join(self.directory, "floor")
        os.makedirs(where, exist_ok=True)
        start = time.perf_counter()
        written = 0
        for i in range(blocks):
            with open(os.path.join(where, str(i)), "wb") as f:
                written += f.write(data[: min(size, total - i * size)])
        seconds = time.perf_counter() - start
        shutil.rmtree(where)
        return {"seconds": seconds, "mb_per_s": written / 1e6 / seconds, "bytes": written}

    def codecs(self, name: str) -> list[dict[str, Any]]:
        """Compression ratio and encode / decode speed of candidate codecs on stored chunks."""
        import zarr
        from numcodecs import LZ4, Blosc, Zstd

        candidates: dict[str, Any] = {
            "zstd level 1": Zstd(level=1),
            "lz4": LZ4(),
            "blosc lz4 + byte shuffle": Blosc("lz4", 5, Blosc.SHUFFLE),
            "blosc zstd 1 + byte shuffle": Blosc("zstd", 1, Blosc.SHUFFLE),
        }
        group = zarr.open_group(os.path.join(self.output(name), "results.zarr"), mode="r")
        rows = []
        for var in ("risk", "xi"):
            arr = group[var] if var in group else None
            if not isinstance(arr, zarr.Array) or arr.ndim < 3:  # fixed xi: "xi" is a coordinate
                continue
            data = np.ascontiguousarray(arr[: min(arr.shape[0], 4 * arr.chunks[0])])
            for cname, codec in candidates.items():
                enc_t, dec_t = [], []
                for _ in range(3):
                    start = time.perf_counter()
                    encoded = codec.encode(data)
                    enc_t.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    codec.decode(encoded)
                    dec_t.append(time.perf_counter() - start)
                rows.append(
                    {
                        "variable": var,
                        "codec": cname,
                        "ratio": data.nbytes / len(encoded),
                        "encode_mb_s": data.nbytes / 1e6 / float(np.median(enc_t)),
                        "decode_mb_s": data.nbytes / 1e6 / float(np.median(dec_t)),
                    }
                )
        return rows


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "min": min(values), "max": max(values)}


def _paired(
    a: Sequence[Mapping[str, float]],
    b: Sequence[Mapping[str, float]],
    keys_a: Sequence[str],
    keys_b: Sequence[str],
) -> float:
    """Median over rounds of sum(a[keys_a]) / sum(b[keys_b]): b's throughput relative to a's."""
    return float(
        np.median([sum(x[k] for k in keys_a) / sum(y[k] for k in keys_b) for x, y in zip(a, b)])
    )


def measure_sweep(
    directory: str | None = None,
    quick: bool = False,
    repeat: int = 3,
    ways: Sequence[str] = WAYS,
    sweeps: Sequence[str] = tuple(SWEEPS),
    log: Callable[[str], object] = lambda line: None,
    warmup: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; returns the phases of every run, their medians and the ratios.

    ``warmup``: a first round, not counted, fills the page cache and the kernel cache.
    """
    work = directory or tempfile.mkdtemp(prefix="fastsd-bench-sweep-")
    try:
        bench = SweepBench(work, QUICK_B if quick else FULL_B)
        load_before = os.getloadavg()
        runs: dict[str, dict[str, list[dict[str, float]]]] = {
            s: {w: [] for w in ways} for s in sweeps
        }
        order = [(s, w) for s in sweeps for w in ways]
        first = 0 if warmup else 1  # round 0 warms the caches and is not counted
        for r in range(first, repeat + 1):
            for s, w in order[r % len(order) :] + order[: r % len(order)]:
                t = bench.run(s, w)
                log(f"round {r} {s:6s} {w:6s} " + " ".join(f"{k} {v:.2f}" for k, v in t.items()))
                if r:
                    runs[s][w].append(t)
        res: dict[str, Any] = {
            "B": bench.B,
            "K": bench.K,
            "repeat": repeat,
            "warmup": warmup,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "machine": machine_description(),
            "sweeps": {},
        }
        for s in sweeps:
            out: dict[str, Any] = {"L": len(bench.lams[s]), "output_bytes": bench.output_bytes(s)}
            for w in ways:
                out[w] = {k: _stats([t[k] for t in runs[s][w]]) for k in runs[s][w][0]}
            done = runs[s]
            if "api" in ways and "sweep" in ways:  # throughput: API time / sweep time
                out["sweep_vs_api"] = _paired(done["api"], done["sweep"], ("phase",), ("phase",))
                out["sweep_vs_api_cpu"] = _paired(done["api"], done["sweep"], ("cpu",), ("cpu",))
                out["sweep_vs_api_with_load"] = _paired(
                    done["api"], done["sweep"], ("phase", "load"), ("phase", "load")
                )
            if "sweep" in ways and "local2" in ways:
                out["local2_vs_sweep"] = _paired(
                    done["sweep"], done["local2"], ("phase",), ("phase",)
                )
                out["local2_vs_sweep_cpu"] = _paired(
                    done["sweep"], done["local2"], ("cpu",), ("cpu",)
                )
                out["local2_vs_sweep_with_cluster"] = _paired(
                    done["sweep"], done["local2"], ("phase",), ("phase", "cluster")
                )
            out["disk_floor"] = bench.disk_floor(s)
            out["codecs"] = bench.codecs(s)
            res["sweeps"][s] = out
        return res
    finally:
        if directory is None:
            shutil.rmtree(work, ignore_errors=True)


def format_sweep(res: Mapping[str, Any]) -> str:
    """Markdown tables of a :func:`measure_sweep` result."""

    def cell(s: Mapping[str, float]) -> str:
        return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"

    lines = [
        f"W1's problems, B = {res['B']}, K = {res['K']}; seconds, median (min-max) of "
        f"{res['repeat']} interleaved rounds, each a fresh process; load average "
        f"{res['load_average_before'][0]:.1f} before, {res['load_average_after'][0]:.1f} after; "
        f"{res['machine']}",
        "",
    ]
    names = {"api": "API (in memory)", "sweep": "fastsd sweep", "local2": "--scheduler local:2"}
    for s, out in res["sweeps"].items():
        mb = out["output_bytes"] / 1e6
        lines += [
            f"**{s}** (L = {out['L']}, {mb:.0f} MB of results)",
            "",
            "| way | process | start-up | load | cluster | sweep phase | MB/s | CPU s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for w in WAYS:
            if w in out:
                t = out[w]
                rate = mb / t["phase"]["median"]
                lines.append(
                    f"| {names[w]} | {cell(t['process'])} | {cell(t['startup'])} | "
                    f"{cell(t['load'])} | {cell(t['cluster'])} | {cell(t['phase'])} | "
                    f"{rate:.0f} | {cell(t['cpu'])} |"
                )
        floor = out["disk_floor"]
        lines += ["", f"plain write of the same bytes: {floor['seconds']:.2f} s"]
        lines[-1] += f" ({floor['mb_per_s']:.0f} MB/s)"
        if "sweep_vs_api" in out:
            lines.append(
                f"in-process sweep phase / API throughput: {out['sweep_vs_api']:.2f}x "
                f"(with loading: {out['sweep_vs_api_with_load']:.2f}x; target >= 0.8); "
                f"CPU seconds, whole processes, API / fastsd sweep: {out['sweep_vs_api_cpu']:.2f}"
            )
        if "local2_vs_sweep" in out:
            lines.append(
                f"local:2 / in-process sweep phase throughput: {out['local2_vs_sweep']:.2f}x "
                f"(with the cluster's start: {out['local2_vs_sweep_with_cluster']:.2f}x; "
                "target >= 0.9); CPU seconds, whole processes, in-process / local:2: "
                f"{out['local2_vs_sweep_cpu']:.2f}"
            )
        lines += [
            "",
            "| variable | codec | ratio | encode MB/s | decode MB/s |",
            "|---|---|---|---|---|",
        ]
        for c in out["codecs"]:
            lines.append(
                f"| {c['variable']} | {c['codec']} | {c['ratio']:.2f} | "
                f"{c['encode_mb_s']:.0f} | {c['decode_mb_s']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(
        prog="fastsd bench --sweep", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (after a warm-up)")
    parser.add_argument("--quick", action="store_true", help=f"B = {QUICK_B} instead of {FULL_B}")
    parser.add_argument(
        "--dir", help="working directory (the disk under test; default: a temp dir)"
    )
    parser.add_argument("--no-dask", action="store_true", help="leave out --scheduler local:2")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("--verbose", action="store_true", help="print every run")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    check_json(parser, args)
    ways = tuple(w for w in WAYS if not (args.no_dask and w == "local2"))
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else None
    res = measure_sweep(args.dir, args.quick, args.repeat, ways, log=log or (lambda line: None))
    print(format_sweep(res))
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
