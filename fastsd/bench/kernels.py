"""Measure the standard workloads W1 and W2 side by side in one process.

W1: B = 256 problems, n = 256, d = 64, 128 log-spaced lambdas, 16 constant xi,
k = 0..8 -- excess risk of every (problem, lambda, xi, k).
W2: the same problems and lambdas, the oracle-optimal xi for every k <= 8.
W1-TS: W1's cells as a teacher x student grid of per-step penalties (16 x 8).
WK: batched kernel SD, B = 64 RBF problems with n = 512, a teacher x student grid of
8 x 8 per-step penalty schedules, 16 constant xi, k = 0..8 (in-sample risk for f*).

Both backends run on the same decomposed inputs, in ``repeat`` interleaved rounds
after a warm-up call each (JIT excluded); the table gives the median and the range
of the rounds, and ratios are taken per round. A *cell* is one
(problem, lambda, xi, k, eigen-direction) update. Run it with
``fastsd bench`` or ``python -m fastsd.bench.kernels``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numba
import numpy as np

from .. import reference
from .._argparse import OneLineParser
from ..decomposition import decompose
from ..decomposition.kernel import decompose_kernel
from ..engine.grids import constant_schedules
from ..engine.sweeps import sweep_optimal, sweep_risk
from ..exceptions import ignore_unrecoverable
from ..store import manifest
from ..store.manifest import check_output_file
from .e2e import WORKLOADS, format_e2e, measure_e2e

__all__ = ["check_json", "write_json", "workload", "measure", "compare_legacy_fastmath", "main"]


def workload(
    B: int = 256, n: int = 256, d: int = 64, L: int = 128, G: int = 16, K: int = 8, seed: int = 0
) -> dict[str, Any]:
    """The W1/W2 inputs: decomposition, theta*, noise variance, grids."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, n, d))
    theta = rng.standard_normal((B, d))
    return dict(
        X=X,
        theta=theta,
        noise_var=np.full(B, 0.5),
        lams=np.logspace(-4, 4, L),
        xis=np.linspace(-1.0, 2.0, G),
        K=K,
    )


def kernel_workload(
    B: int = 64,
    n: int = 512,
    teachers: int = 8,
    students: int = 8,
    G: int = 16,
    K: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """WK inputs: B RBF kernel problems (n points in 3-D), their batched kernel
    decomposition, f* at the points, and a teacher x student grid of per-step
    penalties (teachers * students = L = 64 schedules lam_0, lam_s, ..., lam_s)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, n, 3))
    sq = np.sum((x[:, :, None, :] - x[:, None, :, :]) ** 2, axis=-1)
    dec = decompose_kernel(np.exp(-0.5 * sq))
    f_star = np.sin(2.0 * x[..., 0]) + x[..., 1] ** 2
    return dict(
        dec=dec,
        f_star=f_star,
        noise_var=np.full(B, 0.1),
        teachers=np.logspace(-3, 1, teachers),
        students=np.logspace(-3, 1, students),
        xis=np.linspace(-1.0, 2.0, G),
        K=K,
    )


def _best_time(func: Callable[[], object], repeat: int) -> float:
    func()  # warm-up (JIT, caches)
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _rounds(funcs: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Seconds of each call in ``repeat`` interleaved rounds, after one warm-up call each.

    Every round runs each call once, in turn, so a ratio of two calls is taken
    per round, on the same state of a shared machine.
    """
    for func in funcs.values():
        func()  # warm-up (JIT, caches)
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeat):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return times


def _per_round(a: list[float], b: list[float], scale: float = 1.0) -> list[float]:
    """``scale * a[r] / b[r]`` for every round ``r``."""
    return [scale * x / y for x, y in zip(a, b, strict=True)]


def measure(repeat: int = 3, quick: bool = False) -> dict[str, Any]:
    """Time W1, W1-TS, W2 and WK on both backends, and the batched decomposition.

    Each workload's calls run in ``repeat`` interleaved rounds after a warm-up
    call each; ratios are taken per round.

    Returns
    -------
    dict
        Sizes, the machine, the load average before and after, and for every
        measurement a list of ``repeat`` values: seconds (keys ending in
        ``_s``), cells per second, and ratios (speed-ups, thread scaling).
    """
    load_before = os.getloadavg()[0]
    w = workload(B=32 if quick else 256)
    X, theta, var, lams, xis, K = (w[k] for k in ("X", "theta", "noise_var", "lams", "xis", "K"))
    B, n, d = X.shape
    cells = B * lams.size * xis.size * (K + 1) * d
    dec = decompose(X)
    res: dict[str, Any] = {
        "B": B,
        "n": n,
        "d": d,
        "L": lams.size,
        "G": xis.size,
        "K": K,
        "cells": cells,
        "repeat": repeat,
    }
    all_threads: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at import
    res["threads"] = all_threads
    res["decompose_s"] = _rounds({"decompose": lambda: decompose(X)}, repeat)["decompose"]

    t2 = dec.project_theta(theta)
    schedules = constant_schedules(xis, K)
    # W1-TS: the same cells as a teacher x student grid of per-step penalties
    # (L/8 teachers x 8 students), in the same rounds as W1
    teachers, students = lams[::8], lams[:: lams.size // 8]
    w1_calls: dict[str, Callable[[], object]] = {
        "w1_numpy_s": partial(sweep_risk, dec, theta, var, lams, xis, K, backend="numpy"),
        "w1_numpy_blocked_s": lambda: [
            reference.sweep_risk(
                dec.s2[b : b + 1], t2[b : b + 1], var[b : b + 1], n, lams, schedules
            )
            for b in range(B)
        ],
        "w1ts_numba_s": partial(
            sweep_risk, dec, theta, var, teachers, xis, K, student_lams=students
        ),
    }
    for count in sorted({1, 2, all_threads} & set(range(1, all_threads + 1))):
        w1_calls[f"w1_numba_{count}t_s"] = partial(
            sweep_risk, dec, theta, var, lams, xis, K, threads=count
        )
    res.update(_rounds(w1_calls, repeat))
    res["w1_numba_s"] = res[f"w1_numba_{all_threads}t_s"]
    ts_cells = cells * teachers.size * students.size / lams.size
    res["w1ts_cells_per_s"] = [ts_cells / t for t in res["w1ts_numba_s"]]
    res["w1ts_fraction_of_w1"] = _per_round(
        res["w1_numba_s"], res["w1ts_numba_s"], ts_cells / cells
    )

    with ignore_unrecoverable():  # only the times are used, not the xi
        w2_calls: dict[str, Callable[[], object]] = {
            "w2_numpy_s": partial(sweep_optimal, dec, theta, var, lams, K, backend="numpy")
        }
        for count in sorted({1, all_threads}):
            w2_calls[f"w2_numba_{count}t_s"] = partial(
                sweep_optimal, dec, theta, var, lams, K, threads=count
            )
        res.update(_rounds(w2_calls, repeat))
    res["w2_numba_s"] = res[f"w2_numba_{all_threads}t_s"]

    # WK: batched kernel-SD sweep with per-step penalties (teacher x student)
    kw = kernel_workload(B=8 if quick else 64)
    kdec, f_star, kvar, tl, sl, kxis = (
        kw[k] for k in ("dec", "f_star", "noise_var", "teachers", "students", "xis")
    )
    res["wk_cells"] = kdec.s2.shape[0] * tl.size * sl.size * kxis.size * (K + 1) * kdec.s2.shape[-1]
    res.update(
        _rounds(
            {
                f"wk_{backend}_s": partial(
                    sweep_risk, kdec, f_star, kvar, tl, kxis, K, student_lams=sl, backend=backend
                )
                for backend in ("numpy", "numba")
            },
            repeat,
        )
    )
    res["wk_speedup"] = _per_round(res["wk_numpy_s"], res["wk_numba_s"])
    res["wk_cells_per_s"] = [res["wk_cells"] / t for t in res["wk_numba_s"]]
    res["wk_B"], res["wk_n"] = kdec.s2.shape

    res["w1_speedup"] = _per_round(res["w1_numpy_s"], res["w1_numba_s"])
    res["w1_speedup_vs_blocked"] = _per_round(res["w1_numpy_blocked_s"], res["w1_numba_s"])
    res["w1_cells_per_s"] = [cells / t for t in res["w1_numba_s"]]
    res["w1_numpy_cells_per_s"] = [cells / t for t in res["w1_numpy_s"]]
    if all_threads >= 2:
        res["w1_scaling_1_to_2"] = _per_round(res["w1_numba_1t_s"], res["w1_numba_2t_s"])
    res["w2_speedup"] = _per_round(res["w2_numpy_s"], res["w2_numba_s"])
    res["machine"] = machine_description()
    res["load_average"] = [load_before, os.getloadavg()[0]]
    return res


def numba_workloads(repeat: int = 3, quick: bool = False) -> dict[str, float]:
    """Seconds of W1, W2 and WK on the numba backend, all threads (best of ``repeat``)."""
    w = workload(B=32 if quick else 256)
    dec = decompose(w["X"])
    args = (dec, w["theta"], w["noise_var"], w["lams"])
    kw = kernel_workload(B=8 if quick else 64)
    k_args = (kw["dec"], kw["f_star"], kw["noise_var"], kw["teachers"], kw["xis"], kw["K"])
    calls: dict[str, Callable[[], object]] = {
        "W1": partial(sweep_risk, *args, w["xis"], w["K"]),
        "W2": partial(sweep_optimal, *args, w["K"]),
        "WK": partial(sweep_risk, *k_args, student_lams=kw["students"]),
    }
    return {name: _best_time(call, repeat) for name, call in calls.items()}


def compare_legacy_fastmath(runs: int = 5, repeat: int = 3, quick: bool = False) -> dict[str, Any]:
    """W1, W2 and WK with the current kernels and with earlier versions' fast-math flags.

    Each run is a fresh process; runs alternate between the two builds
    (``FASTSD_LEGACY_FASTMATH=1`` compiles the same kernels with
    ``{nsz, arcp, contract, afn, reassoc}``, in memory), so that a change in
    the machine's load hits both alike. Each process times every workload as
    the best of ``repeat`` calls after a warm-up call.

    Returns
    -------
    dict
        Per workload: ``"current"`` and ``"legacy"`` (lists of seconds, one per
        run) and ``"ratio"``, the legacy median over the current median
        (throughput of the current kernels relative to the legacy flags).
    """
    code = (
        "import json, warnings; warnings.simplefilter('ignore'); "
        "from fastsd.bench.kernels import numba_workloads; "
        f"print(json.dumps(numba_workloads({repeat}, {quick})))"
    )
    times: dict[str, dict[str, list[float]]] = {}
    for _ in range(runs):
        for build, extra in (("current", {}), ("legacy", {"FASTSD_LEGACY_FASTMATH": "1"})):
            env = {k: v for k, v in os.environ.items() if k != "FASTSD_LEGACY_FASTMATH"}
            out = subprocess.run(
                [sys.executable, "-c", code],
                env={**env, **extra},
                check=True,
                capture_output=True,
                text=True,
            )
            for name, seconds in json.loads(out.stdout.splitlines()[-1]).items():
                times.setdefault(name, {}).setdefault(build, []).append(seconds)
    result: dict[str, Any] = {"runs": runs, "repeat": repeat, "machine": machine_description()}
    for name, builds in times.items():
        ratio = float(np.median(builds["legacy"]) / np.median(builds["current"]))
        result[name] = {**builds, "ratio": ratio}
    return result


def format_legacy(res: dict[str, Any]) -> str:
    """Markdown table of a :func:`compare_legacy_fastmath` result."""
    lines = [
        f"{res['runs']} alternating runs per build, each the best of {res['repeat']} calls; "
        f"{res['machine']}",
        "",
        "| workload | current: median (min-max) | legacy flags: median (min-max) | "
        "current / legacy throughput |",
        "|---|---|---|---|",
    ]
    for name in ("W1", "W2", "WK"):
        cur, old = res[name]["current"], res[name]["legacy"]
        lines.append(
            f"| {name} | {np.median(cur):.4f} s ({min(cur):.4f}-{max(cur):.4f}) | "
            f"{np.median(old):.4f} s ({min(old):.4f}-{max(old):.4f}) | "
            f"{res[name]['ratio']:.2f} |"
        )
    return "\n".join(lines)


def machine_description() -> str:
    """CPU model, core count and library versions, for the performance tables."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}; {os.cpu_count()} logical CPUs; numba threads "
        # set by numba.config at import time; numba exports threading_layer undeclared
        f"{numba.config.NUMBA_NUM_THREADS} ({numba.threading_layer() if _layer_ready() else 'n/a'}); "  # type: ignore[attr-defined]
        f"numpy {np.__version__}, numba {numba.__version__}"
    )


def _layer_ready() -> bool:
    try:
        numba.threading_layer()  # type: ignore[attr-defined]  # exported, undeclared
        return True
    except ValueError:
        return False


def _stat(values: Sequence[float], fmt: str, unit: str = "") -> str:
    """``median (min-max)`` of a measurement's rounds."""
    v = np.asarray(values, dtype=float)
    med, lo, hi = (format(float(f(v)), fmt) for f in (np.median, np.min, np.max))
    return f"{med}{unit} ({lo}-{hi})"


def format_table(res: dict[str, Any]) -> str:
    """Markdown table of a :func:`measure` result: median (min-max) of its rounds."""
    t = res["threads"]
    rows = [
        ("W1 fixed-xi sweep, NumPy reference", _stat(res["w1_numpy_s"], ".3f", " s")),
        (
            "W1, NumPy looped over problems (cache-blocked)",
            _stat(res["w1_numpy_blocked_s"], ".3f", " s"),
        ),
        (f"W1, numba, {t} threads", _stat(res["w1_numba_s"], ".4f", " s")),
        ("W1 throughput, numba (cells/s)", _stat(res["w1_cells_per_s"], ".2e")),
        ("W1 speed-up, NumPy reference / numba", _stat(res["w1_speedup"], ".0f", "x")),
        (
            "W1 speed-up, cache-blocked NumPy / numba",
            _stat(res["w1_speedup_vs_blocked"], ".0f", "x"),
        ),
    ]
    if "w1_scaling_1_to_2" in res:
        rows.append(("W1 numba, 1 -> 2 threads", _stat(res["w1_scaling_1_to_2"], ".2f", "x")))
    rows += [
        (
            "W1-TS teacher x student per-step lambda sweep, numba",
            _stat(res["w1ts_numba_s"], ".4f", " s"),
        ),
        ("W1-TS throughput / W1 throughput", _stat(res["w1ts_fraction_of_w1"], ".2f")),
        ("W2 optimal-xi sweep, NumPy reference", _stat(res["w2_numpy_s"], ".3f", " s")),
        (f"W2, numba, {t} threads", _stat(res["w2_numba_s"], ".4f", " s")),
        ("W2 speed-up, NumPy reference / numba", _stat(res["w2_speedup"], ".0f", "x")),
        ("WK kernel-SD sweep, NumPy reference", _stat(res["wk_numpy_s"], ".3f", " s")),
        (f"WK, numba, {t} threads", _stat(res["wk_numba_s"], ".4f", " s")),
        ("WK speed-up, NumPy reference / numba", _stat(res["wk_speedup"], ".0f", "x")),
        ("batched decomposition of W1's X (see --e2e)", _stat(res["decompose_s"], ".3f", " s")),
    ]
    load = res["load_average"]
    head = (
        f"W1/W2: B={res['B']}, n={res['n']}, d={res['d']}, L={res['L']}, G={res['G']}, "
        f"K={res['K']} ({res['cells']:.2e} cells); WK: B={res['wk_B']}, n={res['wk_n']}, "
        f"8 x 8 per-step lambdas, G=16, K={res['K']} ({res['wk_cells']:.2e} cells). "
        f"{res['machine']}; median (min-max) of {res['repeat']} interleaved rounds after a "
        f"warm-up call; load average {load[0]:.1f} before, {load[1]:.1f} after.\n\n"
    )
    lines = ["| measurement | median (min-max) |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return head + "\n".join(lines)


def check_json(parser: OneLineParser, args: argparse.Namespace) -> None:
    """``--json FILE`` of a ``fastsd bench`` command, checked before the measurements."""
    if args.json:
        try:
            args.json = check_output_file(args.json, "--json")
        except ValueError as exc:
            parser.error(str(exc))


def write_json(path: str | None, res: dict[str, Any]) -> None:
    """Write a ``fastsd bench`` result to ``--json FILE`` (when given), replacing it whole."""
    if path:
        manifest.write_json(path, res, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    """``fastsd bench``: measure W1/W2 (or ``--e2e``) and print the table; returns 0."""
    parser = OneLineParser(
        prog="fastsd bench",
        description=__doc__.split("\n\n")[0],
        epilog="fastsd bench --runner [--dask]: the block runner and the Dask executor "
        "instead (fastsd.bench.runner; its options: fastsd bench --runner --help). "
        "fastsd bench --sweep: a sweep as users pay it, the API, fastsd sweep and "
        "--scheduler local:2 (fastsd bench --sweep --help). fastsd bench --scale: many Dask "
        "workers on 127.0.0.1 (fastsd bench --scale --help).",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes (W1/W2: B = 32 instead of 256)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument(
        "--e2e",
        action="store_true",
        help="end-to-end workloads W3, W4, W5 and streaming S (decompose + "
        "sweeps) against the BLAS/LAPACK limit, instead of W1/W2",
    )
    parser.add_argument(
        "--vs-legacy-fastmath",
        action="store_true",
        help="W1, W2, WK in alternating fresh processes: the current kernels against "
        "the same kernels compiled with earlier versions' fast-math flags "
        "(--repeat runs of each)",
    )
    parser.add_argument(
        "--workloads",
        default="W3,W4,W5,S",
        help="with --e2e: comma-separated subset (default: %(default)s)",
    )
    parser.add_argument(
        "--tmpdir",
        help="with --e2e: where S writes its .npy (1.6 GB; "
        "default: the system's temporary directory)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    check_json(parser, args)
    if args.vs_legacy_fastmath:
        res = compare_legacy_fastmath(runs=args.repeat, quick=args.quick)
        print(format_legacy(res))
    elif args.e2e:
        names = [w.strip() for w in args.workloads.split(",") if w.strip()]
        unknown = sorted(set(names) - set(WORKLOADS))
        if unknown or not names:
            parser.error(f"--workloads: unknown {unknown}; choose from {sorted(WORKLOADS)}")
        res = measure_e2e(names, repeat=args.repeat, quick=args.quick, tmpdir=args.tmpdir)
        res["machine"] = machine_description()
        print(res["machine"] + "\n")
        print(format_e2e(res))
    else:
        res = measure(repeat=args.repeat, quick=args.quick)
        print(format_table(res))
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
