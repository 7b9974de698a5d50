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
grid size (beyond the inputs themselves and ``out``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_float_array, check_noise_var, check_steps
from .decomposition import Decomposition, decompose
from .sweep import _check_backend, _check_grid, check_schedules, sweep_optimal, sweep_risk

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
    """

    risk: np.ndarray
    lam_index: np.ndarray
    xi_index: np.ndarray
    xi: np.ndarray | None = None


def plan_blocks(n_problems, n_lams, bytes_per_problem, bytes_per_pair, memory_limit):
    """Largest (problems, lambdas) block whose working set fits the bound.

    Returns
    -------
    problems_per_block, lams_per_block : int
    """
    if memory_limit <= 0:
        raise ValueError(f"memory_limit must be a positive number of bytes, got {memory_limit}")
    budget = memory_limit // 2  # headroom for temporaries and the reduction
    lams_per_block = n_lams
    per_problem = bytes_per_problem + lams_per_block * bytes_per_pair
    if per_problem > budget:
        lams_per_block = max(1, (budget - bytes_per_problem) // max(bytes_per_pair, 1))
        per_problem = bytes_per_problem + lams_per_block * bytes_per_pair
        if per_problem > budget:
            raise ValueError(
                f"memory_limit={memory_limit} bytes is too small for one problem "
                f"(needs about {2 * per_problem} bytes); raise memory_limit"
            )
    problems_per_block = max(1, min(n_problems, budget // per_problem))
    return int(problems_per_block), int(lams_per_block)


def _problem_source(X, theta_star, noise_var):
    """Validated accessors for problem blocks (X may be a memmap: read lazily)."""
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
    var = np.broadcast_to(check_noise_var(noise_var, (B,)), (B,))

    def block(start, stop):
        if isinstance(X, Decomposition):
            dec = X.subset(slice(start, stop))
        else:
            dec = decompose(np.asarray(X[start:stop]))
        return dec, theta[start:stop], var[start:stop]

    return B, n, d, block


def _progress_bar(progress, total, desc):
    """tqdm bar (progress=True), a callable ``progress(done, total)``, or nothing."""
    if not progress:
        return None, None
    if callable(progress):
        return None, progress
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "progress=True needs tqdm: pip install 'fastsd[cli]' (or pass a callable)"
        ) from None
    return tqdm(total=total, desc=desc, unit="block"), None


def _drive(B, L, plan, block, compute, consume, progress, desc):
    """Run ``compute`` over the block grid, handing each result to ``consume``."""
    pb, lb = plan
    blocks = [(b0, l0) for b0 in range(0, B, pb) for l0 in range(0, L, lb)]
    bar, callback = _progress_bar(progress, len(blocks), desc)
    try:
        current = None
        for done, (b0, l0) in enumerate(blocks, 1):
            b1, l1 = min(B, b0 + pb), min(L, l0 + lb)
            if current is None or current[0] != b0:
                current = (b0, block(b0, b1))
            consume(b0, b1, l0, l1, compute(*current[1], l0, l1))
            if bar is not None:
                bar.update(1)
            if callback is not None:
                callback(done, len(blocks))
    finally:
        if bar is not None:
            bar.close()
        flush = getattr(consume, "flush", None)
        if flush is not None:
            flush()


class _Writer:
    """Write blocks into ``out`` (flushing a memmap when done or interrupted)."""

    def __init__(self, out):
        self.out = out

    def __call__(self, b0, b1, l0, l1, result):
        self.out[b0:b1, l0:l1] = result

    def flush(self):
        if hasattr(self.out, "flush"):
            self.out.flush()


def _output(out, shape, memory_limit):
    if out is None:
        need = int(np.prod(shape)) * 8
        if need > memory_limit:
            raise ValueError(
                f"the full result {shape} needs {need:,} bytes, over memory_limit="
                f"{memory_limit:,}; pass reduce='min', or out= an array on disk "
                "(numpy.lib.format.open_memmap)"
            )
        return np.empty(shape)
    if tuple(out.shape) != shape:
        raise ValueError(f"out must have shape {shape}, got {tuple(out.shape)}")
    return out


def sweep_risk_chunked(X, theta_star, noise_var, lams, xis, max_steps, *, reduce=None,
                       out=None, memory_limit=GiB, backend="numba", threads=None,
                       progress=False):
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
    memory_limit : int, default=1 GiB
        Bound on the working memory, in bytes.
    progress : bool or callable, default=False
        True: a tqdm progress bar; a callable gets ``(blocks_done, blocks_total)``.

    Returns
    -------
    ndarray of shape (B, L, G, K + 1), or BestRisk
    """
    _check_backend(backend, threads)
    if reduce not in (None, "min"):
        raise ValueError(f"reduce must be None or 'min', got {reduce!r}")
    lams = _check_grid(lams)
    schedules = check_schedules(xis, max_steps)
    B, n, d, block = _problem_source(X, theta_star, noise_var)
    G, K = schedules.shape
    p = min(n, d)
    per_problem = 8 * (n * d + 2 * (n + d) * p + d * d)
    per_pair = 8 * G * (K + 1) + (8 * 6 * G * p if backend == "numpy" else 0)
    plan = plan_blocks(B, lams.size, per_problem, per_pair, memory_limit)

    def compute(dec, theta, var, l0, l1):
        return sweep_risk(dec, theta, var, lams[l0:l1], schedules, K, backend=backend,
                          threads=threads)

    if reduce is None:
        result = _output(out, (B, lams.size, G, K + 1), memory_limit)
        _drive(B, lams.size, plan, block, compute, _Writer(result), progress, "sweep_risk")
        return result

    best = np.full((B, K + 1), np.inf)
    lam_index = np.zeros((B, K + 1), dtype=np.int64)
    xi_index = np.zeros((B, K + 1), dtype=np.int64)

    def consume(b0, b1, l0, l1, risk):  # risk (b, l, G, K + 1), C-contiguous
        flat = risk.reshape(b1 - b0, -1, K + 1)  # a view: (b, l * G, K + 1)
        # min reduces in place; argmin over a middle axis would copy the block
        value = flat.min(axis=1)
        arg = np.argmax(flat == value[:, None, :], axis=1)
        better = value < best[b0:b1]
        best[b0:b1] = np.where(better, value, best[b0:b1])
        li, gi = np.unravel_index(arg, (l1 - l0, G))
        lam_index[b0:b1] = np.where(better, li + l0, lam_index[b0:b1])
        xi_index[b0:b1] = np.where(better, gi, xi_index[b0:b1])

    _drive(B, lams.size, plan, block, compute, consume, progress, "sweep_risk")
    return BestRisk(best, lam_index, xi_index)


def sweep_optimal_chunked(X, theta_star, noise_var, lams, max_steps, *, reduce=None,
                          out=None, memory_limit=GiB, backend="numba", threads=None,
                          progress=False):
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

    Returns
    -------
    (risk, xi) as in :func:`fastsd.sweep_optimal`, or BestRisk
    """
    _check_backend(backend, threads)
    if reduce not in (None, "min"):
        raise ValueError(f"reduce must be None or 'min', got {reduce!r}")
    lams = _check_grid(lams)
    K = check_steps(max_steps, "max_steps")
    B, n, d, block = _problem_source(X, theta_star, noise_var)
    p = min(n, d)
    per_problem = 8 * (n * d + 2 * (n + d) * p + d * d)
    per_pair = 8 * (K + 1 + K * K) + (8 * 8 * K * (p + K) if backend == "numpy" else 0)
    plan = plan_blocks(B, lams.size, per_problem, per_pair, memory_limit)

    def compute(dec, theta, var, l0, l1):
        return sweep_optimal(dec, theta, var, lams[l0:l1], K, backend=backend, threads=threads)

    if reduce is None:
        full = 8 * B * lams.size * (K + 1 + K * K)
        if out is None:
            if full > memory_limit:
                _output(None, (B, lams.size, K + 1 + K * K), memory_limit)  # raises
            out = (np.empty((B, lams.size, K + 1)), np.empty((B, lams.size, K, K)))
        risk_out, xi_out = out
        writers = (_Writer(risk_out), _Writer(xi_out))

        def consume(b0, b1, l0, l1, result):
            for writer, part in zip(writers, result):
                writer(b0, b1, l0, l1, part)

        consume.flush = lambda: [w.flush() for w in writers]
        _drive(B, lams.size, plan, block, compute, consume, progress, "sweep_optimal")
        return risk_out, xi_out

    best = np.full((B, K + 1), np.inf)
    lam_index = np.zeros((B, K + 1), dtype=np.int64)
    best_xi = np.full((B, K, K), np.nan)

    def consume(b0, b1, l0, l1, result):
        risk, xi = result  # (b, l, K + 1), (b, l, K, K)
        arg = np.argmin(risk, axis=1)  # (b, K + 1)
        value = np.take_along_axis(risk, arg[:, None, :], axis=1)[:, 0, :]
        better = value < best[b0:b1]
        best[b0:b1] = np.where(better, value, best[b0:b1])
        lam_index[b0:b1] = np.where(better, arg + l0, lam_index[b0:b1])
        if K:
            rows = np.take_along_axis(xi, arg[:, None, 1:, None], axis=1)[:, 0]
            best_xi[b0:b1] = np.where(better[:, 1:, None], rows, best_xi[b0:b1])

    _drive(B, lams.size, plan, block, compute, consume, progress, "sweep_optimal")
    return BestRisk(best, lam_index, np.zeros_like(lam_index), best_xi)
