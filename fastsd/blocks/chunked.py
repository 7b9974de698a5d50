r"""Sweeps larger than memory: stream over problems and lambdas.

:func:`sweep_risk_chunked` and :func:`sweep_optimal_chunked` cut the
(problem, lambda) grid into blocks sized to a memory bound, decompose each block
of problems only when it is reached (so X may be a ``numpy.memmap`` on disk),
and either

* reduce on the fly (``reduce="min"``): keep, per problem and k, the best
  risk over lambda (and schedule) with its argmin -- memory O(B K); or
* write every block into ``out`` (an array or ``numpy.lib.format.open_memmap``
  file), so an interrupted run keeps every finished block.

Peak memory stays under ``memory_limit`` bytes (default 1 GiB) whatever the
grid size (beyond the inputs themselves and ``out``). The blocks go through the
block runner (:mod:`fastsd.blocks.runner`): in this process by default, or as Dask
tasks with ``client=``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .._typing import FloatArray, IntArray
from .._validation import as_float_array, check_bytes, check_lams, check_noise_var, check_steps
from ..decomposition import Decomposition
from ..engine.inputs import check_backend, check_schedules
from ..exceptions import quiet_numpy, report_nonfinite, warn_unrecoverable
from ..store.reading import label_sweep
from .executors import get_executor
from .plan import Block, block_grid, block_memory, plan_blocks
from .runner import run_blocks
from .tasks import BlockResult, SweepTask

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["BestRisk", "sweep_risk_chunked", "sweep_optimal_chunked", "plan_blocks"]

GiB = 1 << 30


@dataclass(frozen=True)
class BestRisk:
    """Best excess risk per problem and step count over a grid.

    Attributes
    ----------
    risk : ndarray of shape (B, K + 1)
        Minimum over lambda (and schedule) of the excess risk with k steps.
    lam_index : ndarray of int, shape (B, K + 1)
        Index into ``lams`` of the minimizer.
    xi_index : ndarray of int, shape (B, K + 1)
        Index into the schedules of the minimizer (fixed-xi sweeps; 0 for
        optimal-xi sweeps, where ``xi`` holds the schedules themselves).
    xi : ndarray of shape (B, K, K) or None
        Optimal-xi sweeps: row k - 1 is the k-step optimal xi at the best lambda.
    lams : ndarray of shape (L,) or None
        The lambda grid; ``lam`` gives the best lambda values themselves.
    """

    risk: FloatArray
    lam_index: IntArray
    xi_index: IntArray
    xi: FloatArray | None = None
    lams: FloatArray | None = None

    def __repr__(self) -> str:
        B, K1 = self.risk.shape
        with np.errstate(all="ignore"):
            best = float(np.nanmin(self.risk)) if np.isfinite(self.risk).any() else float("nan")
        return (
            f"BestRisk(B={B}, K={K1 - 1}, optimal_xi={self.xi is not None}, "
            f"L={None if self.lams is None else self.lams.size}, min_risk={best:.4g})"
        )

    @property
    def lam(self) -> FloatArray:
        """ndarray of shape (B, K + 1): the minimizing lambda values, ``lams[lam_index]``."""
        if self.lams is None:
            raise ValueError("this BestRisk was made without its lambda grid (lams)")
        return self.lams[self.lam_index]


def _check_options(
    backend: str,
    threads: int | None,
    reduce: str | None,
    labels: bool,
    memory_limit: int | str,
    lams: ArrayLike,
) -> tuple[int, FloatArray]:
    """The chunked sweeps' shared options checked: (memory_limit in bytes, lams (L,))."""
    check_backend(backend, threads)
    if reduce not in (None, "min"):
        raise ValueError(f"reduce must be None or 'min', got {reduce!r}")
    if labels and reduce is not None:
        raise ValueError("labels=True needs the full result (reduce=None)")
    limit = check_bytes(memory_limit, "memory_limit")
    checked, _ = check_lams(lams, "lams")
    return limit, checked


def _problem_source(
    X: Any, theta_star: ArrayLike, noise_var: ArrayLike
) -> tuple[int, int, int, FloatArray, FloatArray]:
    """Validated sizes and oracle inputs (X may be a memmap: read lazily)."""
    if isinstance(X, Decomposition):
        if not X.batched:
            raise ValueError("X must be a batch: a Decomposition of X with shape (B, n, d)")
        B, n, d = X.batch_shape[0], X.n_samples, X.n_features
    else:
        if not hasattr(X, "shape") or len(X.shape) != 3:
            raise ValueError("X must be an array of shape (B, n, d) or a batched Decomposition")
        B, n, d = X.shape
        if min(B, n, d) == 0:
            raise ValueError(f"X must not be empty, got shape {X.shape}")
    theta = as_float_array(theta_star, "theta_star", ndim=2)
    if theta.shape != (B, d):
        raise ValueError(f"theta_star must have shape {(B, d)}, got {theta.shape}")
    var = np.array(np.broadcast_to(check_noise_var(noise_var, (B,)), (B,)))
    return B, n, d, theta, var


def _run(
    task: SweepTask,
    B: int,
    L: int,
    plan: tuple[int, int],
    consume: Callable[[Block, BlockResult], object],
    progress: bool | Callable[[int, int], object],
    desc: str,
    client: Any,
) -> tuple[int, int]:
    """The runner on the block grid, on the executor for ``client``.

    Returns (non-finite risks, risks) over the blocks, for one
    :func:`~fastsd.exceptions.report_nonfinite` by the caller.
    """
    counts = [0, 0]

    def counted(block: Block, result: BlockResult) -> None:
        risk = result["risk"]
        counts[0] += risk.size - int(np.count_nonzero(np.isfinite(risk)))
        counts[1] += risk.size
        consume(block, result)

    executor = get_executor(client=client)
    with executor, quiet_numpy():
        run_blocks(
            block_grid(B, L, *plan), task, counted, executor=executor, progress=progress, desc=desc
        )
    return counts[0], counts[1]


class _Writer:
    """Write each block's arrays into ``outs`` (flushing memmaps when done or interrupted)."""

    def __init__(self, outs: dict[str, FloatArray]) -> None:
        self.outs = outs

    def __call__(self, block: Block, result: BlockResult) -> None:
        for name, out in self.outs.items():
            out[block.b0 : block.b1, block.l0 : block.l1] = result[name]

    def flush(self) -> None:
        for out in self.outs.values():
            if hasattr(out, "flush"):
                out.flush()


def _output(
    out: FloatArray | None, shape: tuple[int, ...], memory_limit: int, name: str = "out"
) -> FloatArray:
    """``out`` checked against the result's shape, or a new array if the result fits."""
    if out is None:
        need = int(np.prod(shape)) * 8
        if need > memory_limit:
            raise ValueError(
                f"the full result {shape} needs {need:,} bytes, over memory_limit="
                f"{memory_limit:,}; pass reduce='min', or out= an array on disk "
                "(numpy.lib.format.open_memmap)"
            )
        return np.empty(shape)
    if not hasattr(out, "shape") or not hasattr(out, "dtype"):
        raise TypeError(f"{name} must be an array of shape {shape}, got {type(out).__name__}")
    if tuple(out.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(out.shape)}")
    if out.dtype != np.float64:
        raise TypeError(f"{name} must have dtype float64, got {out.dtype}")
    return out


def _write_all(
    task: SweepTask,
    B: int,
    L: int,
    plan: tuple[int, int],
    outs: dict[str, FloatArray],
    progress: bool | Callable[[int, int], object],
    desc: str,
    client: Any,
) -> tuple[int, int]:
    writer = _Writer(outs)
    try:
        return _run(task, B, L, plan, writer, progress, desc, client)
    finally:
        writer.flush()


def sweep_risk_chunked(
    X: Any,
    theta_star: ArrayLike,
    noise_var: ArrayLike,
    lams: ArrayLike,
    xis: ArrayLike,
    max_steps: int,
    *,
    reduce: str | None = None,
    out: FloatArray | None = None,
    memory_limit: int | str = GiB,
    backend: str = "numba",
    threads: int | None = None,
    progress: bool | Callable[[int, int], object] = False,
    client: Any = None,
    labels: bool = False,
) -> FloatArray | BestRisk | xr.Dataset:
    r""":func:`fastsd.sweep_risk` in blocks under a memory bound.

    Parameters
    ----------
    X : array_like of shape (B, n, d) (a memmap is read block by block), or a
        batched Decomposition
    theta_star, noise_var, lams, xis, max_steps, backend, threads
        As in :func:`fastsd.sweep_risk`.
    reduce : {None, "min"}, default=None
        ``"min"``: return a :class:`BestRisk` (best over lambda and schedule
        per problem and k) instead of the full array.
    out : ndarray of shape (B, L, G, K + 1), optional
        Where to write the full result (``reduce=None``); e.g. a memmap file.
    memory_limit : int or str, default=1 GiB
        Bound on the working memory: bytes, or a size like ``"2GiB"``.
    progress : bool or callable, default=False
        True: a tqdm progress bar; a callable gets ``(blocks_done, blocks_total)``.
    client : distributed.Client, optional
        Compute the blocks as Dask tasks on this client's workers (each with as
        many Numba threads as the worker has); default in this process.
    labels : bool, default=False
        True: return the full result as a labelled ``xarray.Dataset`` (see
        :func:`fastsd.label_sweep`) instead of the bare array.

    Returns
    -------
    ndarray of shape (B, L, G, K + 1), BestRisk, or xarray.Dataset
    """
    memory_limit, lams = _check_options(backend, threads, reduce, labels, memory_limit, lams)
    schedules = check_schedules(xis, max_steps)
    B, n, d, theta, var = _problem_source(X, theta_star, noise_var)
    G, K = schedules.shape
    per_problem, per_pair = block_memory(n, d, K, G, backend=backend)
    plan = plan_blocks(B, lams.size, per_problem, per_pair, memory_limit, 8 * G * (K + 1))
    task = SweepTask(
        "risk",
        X,
        lams,
        K,
        schedules=schedules,
        theta_star=theta,
        noise_var=var,
        backend=backend,
        threads=None if client is not None else threads,
    )

    if reduce is None:
        result = _output(out, (B, lams.size, G, K + 1), memory_limit)
        report_nonfinite(
            *_write_all(task, B, lams.size, plan, {"risk": result}, progress, "sweep_risk", client),
            stacklevel=3,
        )
        if labels:
            return label_sweep(risk=result, lams=lams, schedules=schedules)
        return result

    best = np.full((B, K + 1), np.inf)
    lam_index = np.zeros((B, K + 1), dtype=np.int64)
    xi_index = np.zeros((B, K + 1), dtype=np.int64)

    def consume(block: Block, result: BlockResult) -> None:  # risk (b, l, G, K + 1), C-contiguous
        b0, b1, l0, l1 = block.b0, block.b1, block.l0, block.l1
        flat = result["risk"].reshape(b1 - b0, -1, K + 1)  # a view: (b, l * G, K + 1)
        # min reduces in place; argmin over a middle axis would copy the block
        value = flat.min(axis=1)
        arg = np.argmax(flat == value[:, None, :], axis=1)
        # ties go to the lower lambda index (blocks may finish in any order)
        better = (value < best[b0:b1]) | ((value == best[b0:b1]) & (l0 < lam_index[b0:b1]))
        best[b0:b1] = np.where(better, value, best[b0:b1])
        li, gi = np.unravel_index(arg, (l1 - l0, G))
        lam_index[b0:b1] = np.where(better, li + l0, lam_index[b0:b1])
        xi_index[b0:b1] = np.where(better, gi, xi_index[b0:b1])

    report_nonfinite(
        *_run(task, B, lams.size, plan, consume, progress, "sweep_risk", client), stacklevel=3
    )
    return BestRisk(best, lam_index, xi_index, lams=lams)


def sweep_optimal_chunked(
    X: Any,
    theta_star: ArrayLike,
    noise_var: ArrayLike,
    lams: ArrayLike,
    max_steps: int,
    *,
    reduce: str | None = None,
    out: tuple[FloatArray, FloatArray] | None = None,
    memory_limit: int | str = GiB,
    backend: str = "numba",
    threads: int | None = None,
    progress: bool | Callable[[int, int], object] = False,
    client: Any = None,
    labels: bool = False,
) -> tuple[FloatArray, FloatArray] | BestRisk | xr.Dataset:
    r""":func:`fastsd.sweep_optimal` in blocks under a memory bound.

    Parameters
    ----------
    X, theta_star, noise_var, lams, max_steps, backend, threads, memory_limit, progress
        As in :func:`sweep_risk_chunked`.
    reduce : {None, "min"}, default=None
        ``"min"``: a :class:`BestRisk` with the best lambda per problem and k
        and the optimal xi there.
    out : tuple (risk_out, xi_out), optional
        Arrays of shapes (B, L, K + 1) and (B, L, K, K) for the full result.
    client, labels
        As in :func:`sweep_risk_chunked`.

    Returns
    -------
    (risk, xi) as in :func:`fastsd.sweep_optimal`, BestRisk, or xarray.Dataset
    """
    memory_limit, lams = _check_options(backend, threads, reduce, labels, memory_limit, lams)
    K = check_steps(max_steps, "max_steps")
    B, n, d, theta, var = _problem_source(X, theta_star, noise_var)
    per_problem, per_pair = block_memory(n, d, K, None, backend=backend)
    plan = plan_blocks(B, lams.size, per_problem, per_pair, memory_limit, 8 * (K + 1) * (K + 1))
    task = SweepTask(
        "optimal",
        X,
        lams,
        K,
        theta_star=theta,
        noise_var=var,
        backend=backend,
        threads=None if client is not None else threads,
    )

    if reduce is None:
        if out is None:
            if 8 * B * lams.size * (K + 1 + K * K) > memory_limit:
                _output(None, (B, lams.size, K + 1 + K * K), memory_limit)  # raises
            out = (np.empty((B, lams.size, K + 1)), np.empty((B, lams.size, K, K)))
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError(f"out must be a tuple (risk_out, xi_out), got {type(out).__name__}")
        risk_out = _output(out[0], (B, lams.size, K + 1), memory_limit, "out[0] (risk)")
        xi_out = _output(out[1], (B, lams.size, K, K), memory_limit, "out[1] (xi)")
        counts = _write_all(
            task,
            B,
            lams.size,
            plan,
            {"risk": risk_out, "xi": xi_out},
            progress,
            "sweep_optimal",
            client,
        )
        report_nonfinite(*counts, stacklevel=3)
        warn_unrecoverable(xi_out)
        if labels:
            return label_sweep(risk=risk_out, xi=xi_out, lams=lams)
        return risk_out, xi_out

    best = np.full((B, K + 1), np.inf)
    lam_index = np.zeros((B, K + 1), dtype=np.int64)
    best_xi = np.full((B, K, K), np.nan)

    def consume(block: Block, result: BlockResult) -> None:
        b0, b1, l0 = block.b0, block.b1, block.l0
        risk, xi = result["risk"], result["xi"]  # (b, l, K + 1), (b, l, K, K)
        arg = np.argmin(risk, axis=1)  # (b, K + 1)
        value = np.take_along_axis(risk, arg[:, None, :], axis=1)[:, 0, :]
        better = (value < best[b0:b1]) | ((value == best[b0:b1]) & (l0 < lam_index[b0:b1]))
        best[b0:b1] = np.where(better, value, best[b0:b1])
        lam_index[b0:b1] = np.where(better, arg + l0, lam_index[b0:b1])
        if K:
            rows = np.take_along_axis(xi, arg[:, None, 1:, None], axis=1)[:, 0]
            best_xi[b0:b1] = np.where(better[:, 1:, None], rows, best_xi[b0:b1])

    counts = _run(task, B, lams.size, plan, consume, progress, "sweep_optimal", client)
    report_nonfinite(*counts, stacklevel=3)
    warn_unrecoverable(best_xi)
    return BestRisk(best, lam_index, np.zeros_like(lam_index), best_xi, lams=lams)
