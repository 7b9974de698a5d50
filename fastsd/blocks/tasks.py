r"""Block tasks: one sweep function applied to one block of problems x lambdas.

A :class:`SweepTask` is the unit the runner hands to an executor. It is a plain
picklable object (arrays and settings, no closures) so that Dask can ship it to
workers once; calling it on a :class:`~fastsd.blocks.plan.Block` decomposes that
block's problems (cached across the lambda blocks of the same problems) and
calls the public sweep function on the block's lambdas.

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

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from .._typing import FloatArray
from ..decomposition import Decomposition, decompose
from ..engine import sweeps as sweep
from ..engine.single import self_distill
from ..exceptions import IllConditionedXiWarning

if TYPE_CHECKING:
    from .plan import Block

#: A finished block: named arrays with leading axes (b, l).
BlockResult = dict[str, FloatArray]

__all__ = ["KINDS", "SweepTask"]

KINDS = ("risk", "optimal", "mse", "optimal_validation")


def _rows(arr: Any, b0: int, b1: int) -> Any:
    return None if arr is None else np.asarray(arr[b0:b1])


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
        self._cache: tuple[tuple[int, int], Decomposition] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    def _decomposition(self, b0: int, b1: int) -> Decomposition:
        cache = self._cache
        if cache is not None and cache[0] == (b0, b1):
            return cache[1]
        self._cache = None  # never hold two blocks' decompositions at once
        if isinstance(self.X, Decomposition):
            dec = self.X.subset(slice(b0, b1))
        else:
            dec = decompose(np.asarray(self.X[b0:b1]))
        self._cache = ((b0, b1), dec)
        return dec

    def __call__(self, block: Block) -> BlockResult:
        """The block's arrays; NaN-xi warnings are left to the caller (one per run)."""
        if self.kind in ("risk", "mse"):  # never warn
            return self._compute(block)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IllConditionedXiWarning)
            return self._compute(block)

    def _compute(self, block: Block) -> BlockResult:
        b0, b1 = block.b0, block.b1
        dec = self._decomposition(b0, b1)
        lams = self.lams[block.l0 : block.l1]
        K = self.max_steps
        kw: dict[str, Any] = dict(backend=self.backend, threads=self.threads)
        if self.kind == "risk":
            assert self.theta_star is not None and self.noise_var is not None  # oracle kind
            assert self.schedules is not None  # fixed-xi kind
            return {
                "risk": sweep.sweep_risk(
                    dec,
                    self.theta_star[b0:b1],
                    self.noise_var[b0:b1],
                    lams,
                    self.schedules,
                    K,
                    **kw,
                )
            }
        if self.kind == "optimal":
            assert self.theta_star is not None and self.noise_var is not None  # oracle kind
            risk, xi = sweep.sweep_optimal(
                dec, self.theta_star[b0:b1], self.noise_var[b0:b1], lams, K, **kw
            )
            return {"risk": risk, "xi": xi}
        y, X_val, y_val = (_rows(a, b0, b1) for a in (self.y, self.X_val, self.y_val))
        X_test, y_test = _rows(self.X_test, b0, b1), _rows(self.y_test, b0, b1)
        if self.kind == "mse":
            assert self.schedules is not None  # fixed-xi kind
            out = {"val_mse": sweep.sweep_mse(dec, y, X_val, y_val, lams, self.schedules, K, **kw)}
            if X_test is not None:
                out["test_mse"] = sweep.sweep_mse(
                    dec, y, X_test, y_test, lams, self.schedules, K, **kw
                )
            return out
        val_mse, xi = sweep.sweep_optimal_validation(dec, y, X_val, y_val, lams, K, **kw)
        out = {"val_mse": val_mse, "xi": xi}
        if X_test is not None:
            out["test_mse"] = holdout_mse_at(dec, y, X_test, y_test, lams, xi)
        return out


def holdout_mse_at(
    dec: Decomposition,
    y: FloatArray | None,
    X_test: FloatArray,
    y_test: FloatArray,
    lams: FloatArray,
    xi: FloatArray,
) -> FloatArray:
    r"""Test MSE of the k-step estimator at given schedules, every k = 0..K.

    Parameters
    ----------
    dec : Decomposition of a batch X (b, n, d)
    y : ndarray of shape (b, n)
    X_test : ndarray of shape (b, m, d)
    y_test : ndarray of shape (b, m)
    lams : ndarray of shape (l,)
    xi : ndarray of shape (b, l, K, K)
        Row k - 1 holds the k-step schedule (layout of the optimal sweeps).

    Returns
    -------
    mse : ndarray of shape (b, l, K + 1)
        mean((y_test - X_test theta_k)^2); NaN where the schedule is NaN
        (an unrecoverable xi has no estimator to test).
    """
    b, l, K = xi.shape[0], lams.size, xi.shape[2]
    out = np.empty((b, l, K + 1))
    for k in range(K + 1):
        sched = xi[:, :, k - 1, :k] if k else np.zeros((b, l, 0))
        bad = np.isnan(sched).any(axis=-1)
        theta = self_distill(dec, y, lams, np.where(np.isnan(sched), 0.0, sched))  # (b, l, d)
        resid = y_test[:, None, :] - np.einsum("bmd,bld->blm", X_test, theta)
        out[:, :, k] = np.where(bad, np.nan, np.mean(resid * resid, axis=-1))
    return out
