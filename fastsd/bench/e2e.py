"""End-to-end workloads W3-W5 and streaming, against the machine limit in the same process.

W3: B = 64 problems, n = 4000, d = 256.   W4: one problem, n = 200 000, d = 200.
W5: one problem, n = 500, d = 4000.       S:  n = 2 000 000, d = 100 from a .npy file.

Each runs ``decompose`` and then ``sweep_risk`` (L = 64 lambdas, G = 16 xi,
K = 8) and ``sweep_optimal`` (same lambdas, K = 8). The *machine limit* is
the fastest way to get the same eigenpairs straight from BLAS/LAPACK, timed
the same way in the same run, best of:

* ``loop``: for each problem ``scipy.linalg.blas.dsyrk`` on the
  Fortran-ordered view + ``scipy.linalg.eigh(driver="evd")``, threaded BLAS;
* ``parallel``: the same two routines with one BLAS thread per problem and
  problems on parallel threads (called through ``ctypes``, the way
  :mod:`fastsd.decomposition.lapack` does: SciPy's Python wrappers hold the GIL,
  so threads calling them would not run in parallel).

For S the limit is ``np.load`` of the whole file + the same two routines (the
in-memory route, if X fitted); ``decompose`` streams it in O(d^2 + block).

Times are the median of ``repeat`` consecutive calls after a first call
(reported separately), allocation included. Nominal flops: dsyrk k m^2,
dsyevd 4 m^3 (reduction to tridiagonal form 4/3 m^3, back-transformation
8/3 m^3), with m the Gram size and k the contraction length.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
import scipy.linalg
from numpy.typing import NDArray
from scipy.linalg.blas import dsyrk

from ..decomposition import Decomposition, decompose
from ..decomposition.lapack import blas_threads, fortran_operand, syevd_descending, syrk
from ..engine.sweeps import sweep_optimal, sweep_risk
from ..exceptions import ignore_unrecoverable

__all__ = ["WORKLOADS", "QUICK", "measure_workload", "measure_e2e", "format_e2e"]

#: name -> (B, n, d); B = 0 means one problem given as (n, d).
WORKLOADS: dict[str, tuple[int, int, int]] = {
    "W3": (64, 4000, 256),
    "W4": (0, 200_000, 200),
    "W5": (0, 500, 4000),
    "S": (0, 2_000_000, 100),
}
QUICK: dict[str, tuple[int, int, int]] = {
    "W3": (16, 4000, 256),
    "W4": (0, 50_000, 200),
    "W5": (0, 500, 2000),
    "S": (0, 200_000, 100),
}


def _times(
    funcs: Mapping[str, Callable[[], object]], repeat: int
) -> dict[str, tuple[float, list[float]]]:
    """Per function: (first call, list of ``repeat`` calls) in seconds.

    The functions take turns (a b c a b c ...), so a change in the machine's
    load during the run hits all of them alike -- a shared machine's load
    moves by 2x within seconds.
    """
    out: dict[str, list[float]] = {key: [] for key in funcs}
    for _ in range(repeat + 1):
        for key, func in funcs.items():
            start = time.perf_counter()
            func()
            out[key].append(time.perf_counter() - start)
    return {key: (t[0], t[1:]) for key, t in out.items()}


def _problems(X: NDArray[np.float64]) -> list[NDArray[np.float64]]:
    return [X] if X.ndim == 2 else list(X)


def limit_loop(X: NDArray[np.float64]) -> list[NDArray[np.float64]]:
    """Per problem: scipy dsyrk + scipy eigh(driver="evd"), threaded BLAS; eigenvalues."""
    out: list[NDArray[np.float64]] = []
    for Xb in _problems(X):
        A, trans = fortran_operand(Xb, Xb.shape[0] >= Xb.shape[1])
        G = dsyrk(1.0, A, trans=int(trans))
        out.append(
            scipy.linalg.eigh(G, lower=False, driver="evd", overwrite_a=True, check_finite=False)[0]
        )
    return out


def limit_parallel(X: NDArray[np.float64], threads: int) -> list[NDArray[np.float64]]:
    """One BLAS thread per problem, ``threads`` problems at a time (dsyrk + dsyevd); eigenvalues."""
    problems = _problems(X)

    def one(Xb: NDArray[np.float64]) -> NDArray[np.float64]:
        A, trans = fortran_operand(Xb, Xb.shape[0] >= Xb.shape[1])
        G = syrk(A, trans)
        m = G.shape[0]
        w = np.empty(m)
        syevd_descending(G, w, np.empty((m, m)))
        return w

    with blas_threads(1):
        if threads == 1 or len(problems) == 1:
            return [one(Xb) for Xb in problems]
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, problems))


def _flops(B: int, n: int, d: int) -> float:
    m, k = min(n, d), max(n, d)
    return B * (k * m * m + 4.0 * m**3)


def _sweeps(
    dec: Decomposition,
    theta: NDArray[np.float64],
    lams: NDArray[np.float64],
    xis: NDArray[np.float64],
    K: int,
) -> None:
    sweep_risk(dec, theta, 0.5, lams, xis, K)
    with ignore_unrecoverable():  # only the time is used, not the xi
        sweep_optimal(dec, theta, 0.5, lams, K)


def measure_workload(
    name: str,
    shape: tuple[int, ...],
    repeat: int = 5,
    threads: int | None = None,
    tmpdir: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time one workload's decompose, sweeps and machine limit.

    Parameters
    ----------
    name : str
        ``"S"`` streams X from a .npy file written to ``tmpdir`` (deleted
        after); any other name decomposes an in-memory X.
    shape : tuple
        (n, d) or (B, n, d).

    Returns
    -------
    dict
        ``decompose_s`` (median), ``decompose_first_s``, ``decompose_spread``
        (min, max), ``limit_loop_s``, ``limit_parallel_s``, ``limit_s`` (the
        better), ``fraction`` = limit_s / decompose_s, ``gflops`` and
        ``limit_gflops`` (nominal), ``sweeps_s``, ``e2e_s``.
    """
    threads = numba.get_num_threads() if threads is None else threads
    rng = np.random.default_rng(seed)
    lams, xis, K = np.logspace(-3, 3, 64), np.linspace(-1.0, 2.0, 16), 8
    n, d = shape[-2:]
    row: dict[str, Any] = {"shape": tuple(shape)}
    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        if name == "S":
            path = os.path.join(tmp, "X.npy")
            X = np.lib.format.open_memmap(path, mode="w+", shape=tuple(shape))
            for start in range(0, n, 1 << 18):
                X[start : start + (1 << 18)] = rng.standard_normal((min(1 << 18, n - start), d))
            X.flush()
            del X
            source: str | NDArray[np.float64] = path
            row["file_bytes"] = os.path.getsize(path)
            loop = lambda: limit_loop(np.load(path))  # noqa: E731
            parallel = lambda: limit_parallel(np.load(path), threads)  # noqa: E731
        else:
            source = rng.standard_normal(shape)
            loop = lambda: limit_loop(source)  # noqa: E731
            parallel = lambda: limit_parallel(source, threads)  # noqa: E731
        theta = rng.standard_normal(tuple(shape[:-2]) + (d,))
        timed = _times(
            dict(
                decompose=lambda: decompose(source, threads=threads), loop=loop, parallel=parallel
            ),
            repeat,
        )
        (first, dec_t), (_, loop_t), (_, par_t) = timed.values()
        dec = decompose(source, threads=threads)
        _, sweep_t = _times(dict(s=lambda: _sweeps(dec, theta, lams, xis, K)), repeat)["s"]
    med = float(np.median(dec_t))
    row.update(
        decompose_s=med,
        decompose_first_s=first,
        decompose_spread=(float(min(dec_t)), float(max(dec_t))),
        limit_loop_s=float(np.median(loop_t)),
        limit_parallel_s=float(np.median(par_t)),
        sweeps_s=float(np.median(sweep_t)),
    )
    B = shape[0] if len(shape) == 3 else 1
    row["limit_s"] = min(row["limit_loop_s"], row["limit_parallel_s"])
    row["fraction"] = row["limit_s"] / med
    row["gflops"] = _flops(B, n, d) / med / 1e9
    row["limit_gflops"] = _flops(B, n, d) / row["limit_s"] / 1e9
    row["e2e_s"] = med + row["sweeps_s"]
    return row


def measure_e2e(
    names: Sequence[str] = ("W3", "W4", "W5", "S"),
    repeat: int = 5,
    quick: bool = False,
    threads: int | None = None,
    tmpdir: str | None = None,
) -> dict[str, Any]:
    """:func:`measure_workload` for each named workload (``quick``: smaller sizes)."""
    threads = numba.get_num_threads() if threads is None else threads
    sizes = QUICK if quick else WORKLOADS
    out: dict[str, Any] = {"threads": threads, "repeat": repeat}
    for name in names:
        B, n, d = sizes[name]
        out[name] = measure_workload(name, (B, n, d) if B else (n, d), repeat, threads, tmpdir)
    return out


def format_e2e(res: Mapping[str, Any]) -> str:
    """Markdown table of a :func:`measure_e2e` result."""
    lines = [
        f"threads = {res['threads']}; median of {res['repeat']} consecutive calls after a "
        "first call; limit = best of the threaded-BLAS loop and one-thread-per-problem "
        "parallel (dsyrk + dsyevd)\n",
        "| workload | decompose (first; min–max) | GFLOP/s | limit: loop / parallel | "
        "fraction of limit | sweeps | end to end |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("W3", "W4", "W5", "S"):
        if name not in res:
            continue
        r = res[name]
        lo, hi = r["decompose_spread"]
        lines.append(
            f"| {name} {r['shape']} | {r['decompose_s']:.3f} s ({r['decompose_first_s']:.3f}; "
            f"{lo:.3f}–{hi:.3f}) | {r['gflops']:.1f} | {r['limit_loop_s']:.3f} / "
            f"{r['limit_parallel_s']:.3f} s | **{r['fraction']:.2f}** | {r['sweeps_s']:.3f} s | "
            f"{r['e2e_s']:.3f} s |"
        )
    return "\n".join(lines)
