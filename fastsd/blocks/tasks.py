r"""Block tasks: one sweep function applied to one block of problems x lambdas.

A :class:`SweepTask` is the unit the runner hands to an executor. It is a plain
picklable object (arrays and settings, no closures) so that Dask can ship it to
workers once; calling it on a :class:`~fastsd.blocks.plan.Block` decomposes that
block's problems (cached across the lambda blocks of the same problems) and
calls the sweep core (:mod:`fastsd.engine.grids`) on the block's lambdas. Its
inputs were checked when the sweep started (by the chunked sweeps or the
config layer); blocks check nothing again except what only reading X can tell
(non-finite values in a memory-mapped X, reported by global problem index).

Kinds and what a call returns (arrays with leading axes (b, l) of the block):

``"risk"``
    ``{"risk": (b, l, G, K + 1)}`` -- :func:`fastsd.sweep_risk`.
``"optimal"``
    ``{"risk": (b, l, K + 1), "xi": (b, l, K, K)}`` -- :func:`fastsd.sweep_optimal`.
``"mse"``
    ``{"val_mse": (b, l, G, K + 1)[, "test_mse": same]}`` -- :func:`fastsd.sweep_mse`.
``"optimal_validation"``
    ``{"val_mse": (b, l, K + 1), "xi": (b, l, K, K)[, "test_mse": (b, l, K + 1)]}``
    -- :func:`fastsd.sweep_optimal_validation`, and the test MSE of the
    estimator at the xi chosen on validation (NaN where that xi is NaN).
"""

from __future__ import annotations

import copy
import mmap
import time
from typing import Any, cast

import numba
import numpy as np

from .. import reference
from .._typing import BoolArray, FloatArray
from ..decomposition import Decomposition
from ..decomposition.base import as_float64
from ..decomposition.dense import decompose_dense
from ..engine.grids import lam_rows, mse_grid, optimal_grid, optimal_validation_grid, risk_grid
from ..reference.spectral import filter_state
from ..store.layout import store_values, value_counts
from ..store.writer import BlockRecord, BlockWriter
from .plan import Block

#: A finished block: named arrays with leading axes (b, l).
BlockResult = dict[str, FloatArray]

__all__ = ["KINDS", "StoreTask", "SweepTask", "mse_at_schedules"]

KINDS = ("risk", "optimal", "mse", "optimal_validation")


def _rows(arr: Any, b0: int, b1: int) -> Any:
    """Problems b0:b1 of an input (a memmap is read here) as float64."""
    return None if arr is None else np.asarray(arr[b0:b1], dtype=np.float64)


def _mapped(arr: Any) -> bool:
    """True for a C-ordered memmap of a whole file region (not a view of one)."""
    return (
        isinstance(arr, np.memmap)
        and isinstance(arr.base, mmap.mmap)
        and arr.flags.c_contiguous
        and arr.ndim >= 1
    )


def _map_file(filename: str, offset: int, dtype: str, shape: tuple[int, ...]) -> Any:
    return np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)


class _FileRows:
    """How a memory-mapped input travels to another process: its file and place, no data."""

    def __init__(self, arr: Any) -> None:
        self.args = (arr.filename, int(arr.offset), arr.dtype.str, tuple(arr.shape))

    def open(self) -> Any:
        return _map_file(*self.args)


def _row_range(arr: Any, b0: int, b1: int) -> Any:
    """Problems b0:b1 of an input, without reading it: a memmap of the same file for a
    memory-mapped input (so that it still travels as a file reference), else a view."""
    if arr is None or isinstance(arr, np.ndarray) and arr.ndim == 0:
        return arr
    if isinstance(arr, Decomposition):
        return arr.subset(slice(b0, b1))
    if _mapped(arr):
        row = arr.strides[0]
        return _map_file(
            arr.filename, arr.offset + b0 * row, arr.dtype.str, (b1 - b0,) + arr.shape[1:]
        )
    return arr[b0:b1]


class SweepTask:
    """One sweep function on the blocks of a (problem, lambda) grid.

    Parameters
    ----------
    kind : {"risk", "optimal", "mse", "optimal_validation"}
    X : array_like of shape (B, n, d) (a memmap is read block by block), or a
        batched Decomposition
    lams : ndarray of shape (L,)
    max_steps : int
    schedules : ndarray of shape (G, K), optional
        Fixed-xi kinds only.
    theta_star, noise_var : ndarray of shapes (B, d), (B,)
        Oracle kinds.
    y, X_val, y_val : ndarrays of shapes (B, n), (B, n_val, d), (B, n_val)
        Validation kinds.
    X_test, y_test : ndarrays of shapes (B, n_test, d), (B, n_test), optional
        Held-out rows, used neither for fitting nor for tuning.
    backend, threads
        As in the sweep functions.
    """

    def __init__(
        self,
        kind: str,
        X: Any,
        lams: FloatArray,
        max_steps: int,
        *,
        schedules: FloatArray | None = None,
        theta_star: FloatArray | None = None,
        noise_var: FloatArray | None = None,
        y: Any = None,
        X_val: Any = None,
        y_val: Any = None,
        X_test: Any = None,
        y_test: Any = None,
        backend: str = "numba",
        threads: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.X = X
        self.lams = lams
        self.max_steps = max_steps
        self.schedules = schedules
        self.theta_star, self.noise_var = theta_star, noise_var
        self.y, self.X_val, self.y_val = y, X_val, y_val
        self.X_test, self.y_test = X_test, y_test
        self.backend, self.threads = backend, threads
        #: global index of the first problem of the inputs (see :meth:`subset`)
        self.first = 0
        self._cache: tuple[tuple[int, int], Decomposition] | None = None

    #: The per-problem inputs (leading axis: problems).
    INPUTS: tuple[str, ...] = (
        "X",
        "theta_star",
        "noise_var",
        "y",
        "X_val",
        "y_val",
        "X_test",
        "y_test",
    )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = None
        for name in self.INPUTS:  # memory-mapped inputs travel as file references
            if _mapped(state[name]):
                state[name] = _FileRows(state[name])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in self.INPUTS:
            if isinstance(state[name], _FileRows):
                state[name] = state[name].open()
        self.__dict__.update(state)

    def subset(self, b0: int, b1: int) -> SweepTask:
        """The task on problems ``b0:b1`` only (global indices; blocks keep theirs).

        What an out-of-process task ships: its own problems' inputs, or for
        memory-mapped inputs only their file and offset (the worker maps the file).
        """
        out = copy.copy(self)
        out._cache = None
        lo, hi = b0 - self.first, b1 - self.first
        for name in self.INPUTS:
            setattr(out, name, _row_range(getattr(self, name), lo, hi))
        out.first = b0
        return out

    def _decomposition(self, b0: int, b1: int) -> Decomposition:
        cache = self._cache
        if cache is not None and cache[0] == (b0, b1):
            return cache[1]
        self._cache = None  # never hold two blocks' decompositions at once
        lo, hi = b0 - self.first, b1 - self.first
        if isinstance(self.X, Decomposition):
            dec = self.X.subset(slice(lo, hi))
        else:
            X = as_float64(self.X[lo:hi], "X", ndim=(3,))
            count = numba.get_num_threads() if self.threads is None else self.threads
            dec = decompose_dense(X, "gram", count, offset=b0)
        self._cache = ((b0, b1), dec)
        return dec

    def __call__(self, block: Block) -> BlockResult:
        """The block's arrays (no warnings: the caller counts NaN xi once per run)."""
        dec = self._decomposition(block.b0, block.b1)
        b0, b1 = block.b0 - self.first, block.b1 - self.first
        rows = lam_rows(self.lams[block.l0 : block.l1], None, self.max_steps)
        K, backend, threads = self.max_steps, self.backend, self.threads
        s2 = dec.s2
        if self.kind in ("risk", "optimal"):
            assert self.theta_star is not None and self.noise_var is not None  # oracle kinds
            t = dec.project_theta(_rows(self.theta_star, b0, b1), check=False)
            var = self.noise_var[b0:b1]
            if self.kind == "risk":
                assert self.schedules is not None  # fixed-xi kind
                return {
                    "risk": risk_grid(
                        s2, t, var, dec.n_samples, rows, self.schedules, backend, threads
                    )
                }
            risk, xi = optimal_grid(s2, t, var, dec.n_samples, rows, K, backend, threads)
            return {"risk": risk, "xi": xi}
        y = _rows(self.y, b0, b1)
        z = dec.project_y(y, check=False)
        val = self._eval_set(dec, self.X_val, self.y_val, b0, b1)
        test = (
            None if self.X_test is None else self._eval_set(dec, self.X_test, self.y_test, b0, b1)
        )
        if self.kind == "mse":
            assert self.schedules is not None  # fixed-xi kind
            out = {"val_mse": mse_grid(s2, z, *val, rows, self.schedules, backend, threads)}
            if test is not None:
                out["test_mse"] = mse_grid(s2, z, *test, rows, self.schedules, backend, threads)
            return out
        val_mse, xi = optimal_validation_grid(s2, z, *val, rows, K, backend, threads)
        out = {"val_mse": val_mse, "xi": xi}
        if test is not None:
            out["test_mse"] = mse_at_schedules(s2, z, *test, rows, xi)
        return out

    @staticmethod
    def _eval_set(
        dec: Decomposition, X_eval: Any, y_eval: Any, b0: int, b1: int
    ) -> tuple[FloatArray, FloatArray, FloatArray, int]:
        """(R, c, resid2, n_eval) of the block's evaluation rows (see ``eval_projection``)."""
        y = _rows(y_eval, b0, b1)
        R, c, resid2 = reference.eval_projection(dec.eval_basis(_rows(X_eval, b0, b1)), y)
        return R, c, resid2, y.shape[-1]


class StoreTask:
    """A :class:`SweepTask` whose blocks are written into the sweep store where they run.

    Two phases, so that an executor can overlap one block's write with the next
    block's compute: :meth:`compute` (the block's arrays and its compute time)
    and :meth:`write` (the block's chunks, then its marker; returns the
    marker's small record). :meth:`stored` is the record of a block already
    stored: a task run again (after a lost worker) skips those blocks.

    Parameters
    ----------
    task : SweepTask
    writer : fastsd.store.writer.BlockWriter
        The store's writer (a path: it travels to the workers).
    """

    def __init__(self, task: SweepTask, writer: BlockWriter) -> None:
        self.task = task
        self.writer = writer

    def subset(self, b0: int, b1: int) -> StoreTask:
        """The task on problems ``b0:b1`` (see :meth:`SweepTask.subset`)."""
        return StoreTask(self.task.subset(b0, b1), self.writer)

    def stored(self, block: Block) -> BlockRecord | None:
        """The record of ``block`` if it is already stored, else None."""
        return self.writer.record(block.index)

    def compute(self, block: Block) -> tuple[BlockResult, dict[str, float]]:
        """The block's arrays, and when (seconds since the epoch) and how long they took."""
        started, start = time.time(), time.perf_counter()
        result = self.task(block)
        return result, {"started": started, "compute_s": time.perf_counter() - start}

    def write(self, block: Block, computed: tuple[BlockResult, dict[str, float]]) -> BlockRecord:
        """Store a computed block; returns its record: the counts of
        :func:`~fastsd.store.layout.value_counts` (non-finite metrics, unrecoverable xi)
        and the timings."""
        result, timings = computed
        values = store_values(self.task.kind, result)
        return self.writer.write(block, values, {**value_counts(values), **timings})

    def __call__(self, block: Block) -> BlockRecord:
        return self.write(block, self.compute(block))


def mse_at_schedules(
    s2: FloatArray,
    z: FloatArray,
    R: FloatArray,
    c: FloatArray,
    resid2: FloatArray,
    n_eval: int,
    rows: FloatArray,
    xi: FloatArray,
) -> FloatArray:
    r"""Evaluation MSE of the k-step estimator at given schedules, every k = 0..K.

    Parameters
    ----------
    s2, z : ndarray of shape (b, p)
    R, c, resid2, n_eval
        The evaluation set, compressed by :func:`fastsd.reference.eval_projection`.
    rows : ndarray of shape (l, 1)
        One penalty per lambda.
    xi : ndarray of shape (b, l, K, K)
        Row k - 1 holds the k-step schedule (layout of the optimal sweeps).

    Returns
    -------
    mse : ndarray of shape (b, l, K + 1)
        NaN where the schedule is NaN (an unrecoverable xi has no estimator to test).
    """
    b, l, K = xi.shape[0], rows.shape[0], xi.shape[2]
    out = np.empty((b, l, K + 1))
    for k in range(K + 1):
        sched = xi[:, :, k - 1, :k] if k else np.zeros((b, l, 0))
        bad = cast(BoolArray, np.isnan(sched).any(axis=-1))
        _, _, a, u = filter_state(s2, rows[:, 0], np.where(np.isnan(sched), 0.0, sched))
        mse = reference.eval_mse(R, c, resid2, n_eval, (1.0 - u) * a * z[:, None, :])
        out[:, :, k] = np.where(bad, np.nan, mse)
    return out
