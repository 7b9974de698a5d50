"""Chunked sweeps: equal to the unchunked ones, memory-bounded, resumable output."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import fastsd
from fastsd.blocks.plan import block_memory, memory_needed, plan_blocks

# These tests compare sweeps across backends, paths, block plans and executors on random
# problems, where some optimal xi are unrecoverable by construction: the warning is a side
# effect here (it is tested in test_optimal.py, test_xi_acceptance.py and test_sweep_store.py).
pytestmark = pytest.mark.filterwarnings("ignore::fastsd.exceptions.IllConditionedXiWarning")

BACKENDS = ("numba", "numpy")
# Chunked and unchunked runs evaluate every (problem, lambda) cell with the
# same kernel on the same decomposition (LAPACK per problem), so they agree to
# rounding; in practice bit for bit.
RTOL = 1e-13


def make_batch(seed, B=5, n=20, d=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, n, d))
    X[1, :, -1] = X[1, :, 0]  # one rank-deficient problem
    theta = rng.normal(size=(B, d))
    noise_var = rng.uniform(0.3, 2.0, size=B)
    return X, theta, noise_var


LAMS = np.logspace(-8, 8, 10)
XIS = np.array([-0.5, 0.0, 0.6, 1.4])
K = 3
SCHED = np.random.default_rng(5).uniform(-1.0, 2.0, size=(3, K))


def _per_problem(n, d):
    """The block memory model's per-problem working set (bytes)."""
    return block_memory(n, d, K, None)[0]


def risk_limit(n, d, G, lams_per_block, backend="numba"):
    """A memory_limit whose plan is one problem x ``lams_per_block`` lambdas."""
    per_problem, per_pair = block_memory(n, d, K, G, backend=backend)
    return memory_needed(per_problem, per_pair, 1, lams_per_block) + 4


def optimal_limit(n, d, lams_per_block, backend="numba"):
    per_problem, per_pair = block_memory(n, d, K, None, backend=backend)
    return memory_needed(per_problem, per_pair, 1, lams_per_block) + 4


class Recorder:
    """progress callable: records (done, total), optionally interrupts."""

    def __init__(self, stop_after=None):
        self.calls = []
        self.stop_after = stop_after

    def __call__(self, done, total):
        self.calls.append((done, total))
        if self.stop_after is not None and done == self.stop_after:
            raise KeyboardInterrupt


def assert_progress_complete(rec):
    assert rec.calls, "progress was never called"
    total = rec.calls[0][1]
    assert rec.calls == [(i, total) for i in range(1, total + 1)]


# ----------------------------------------------------------------------------
# chunked == unchunked
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("xis", [XIS, SCHED], ids=["constant", "explicit"])
def test_risk_chunked_equals_unchunked(xis, backend, tmp_path):
    X, theta, var = make_batch(0)
    B, n, d = X.shape
    G = xis.shape[0]
    full = fastsd.sweep_risk(X, theta, var, LAMS, xis, K, backend=backend)
    limit = risk_limit(n, d, G, 3, backend)
    if backend == "numba":
        assert plan_blocks(B, LAMS.size, _per_problem(n, d), 8 * G * (K + 1), limit) == (1, 3)
    rec = Recorder()
    got = fastsd.sweep_risk_chunked(
        X, theta, var, LAMS, xis, K, memory_limit=limit, backend=backend, progress=rec
    )
    assert got.shape == full.shape
    assert_allclose(got, full, rtol=RTOL, atol=0)
    # 3 lambdas per block, one problem per block: B * ceil(L / 3) blocks
    assert_progress_complete(rec)
    assert rec.calls[-1][1] == B * -(-LAMS.size // 3)

    path = tmp_path / "risk.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=full.shape)
    ret = fastsd.sweep_risk_chunked(
        X, theta, var, LAMS, xis, K, memory_limit=limit, backend=backend, out=out
    )
    assert ret is out
    del out, ret
    assert_allclose(np.load(path, mmap_mode="r"), full, rtol=RTOL, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_optimal_chunked_equals_unchunked(backend, tmp_path):
    X, theta, var = make_batch(1)
    B, n, d = X.shape
    risk, xi = fastsd.sweep_optimal(X, theta, var, LAMS, K, backend=backend)
    limit = optimal_limit(n, d, 4, backend)
    rec = Recorder()
    got_risk, got_xi = fastsd.sweep_optimal_chunked(
        X, theta, var, LAMS, K, memory_limit=limit, backend=backend, progress=rec
    )
    assert_allclose(got_risk, risk, rtol=RTOL, atol=0)
    assert_array_equal(np.isnan(got_xi), np.isnan(xi))
    assert_allclose(got_xi, xi, rtol=1e-12, atol=0)  # NaN positions equal
    assert_progress_complete(rec)
    assert rec.calls[-1][1] == B * -(-LAMS.size // 4)

    paths = tmp_path / "risk.npy", tmp_path / "xi.npy"
    outs = (
        np.lib.format.open_memmap(paths[0], mode="w+", dtype=np.float64, shape=risk.shape),
        np.lib.format.open_memmap(paths[1], mode="w+", dtype=np.float64, shape=xi.shape),
    )
    ret = fastsd.sweep_optimal_chunked(
        X, theta, var, LAMS, K, memory_limit=limit, backend=backend, out=outs
    )
    assert ret[0] is outs[0] and ret[1] is outs[1]
    del outs, ret
    assert_allclose(np.load(paths[0], mmap_mode="r"), risk, rtol=RTOL, atol=0)
    assert_allclose(np.load(paths[1], mmap_mode="r"), xi, rtol=1e-12, atol=0)


def test_decomposition_input_and_single_block(tmp_path):
    X, theta, var = make_batch(2)
    dec = fastsd.decompose(X)
    full = fastsd.sweep_risk(X, theta, var, LAMS, XIS, K)
    assert_allclose(
        fastsd.sweep_risk_chunked(
            dec, theta, var, LAMS, XIS, K, memory_limit=risk_limit(20, 5, 4, 3)
        ),
        full,
        rtol=RTOL,
        atol=0,
    )
    # default memory_limit: a single block
    rec = Recorder()
    assert_allclose(
        fastsd.sweep_risk_chunked(X, theta, var, LAMS, XIS, K, progress=rec),
        full,
        rtol=RTOL,
        atol=0,
    )
    assert rec.calls == [(1, 1)]
    risk, _ = fastsd.sweep_optimal(X, theta, var, LAMS, K)
    got, _ = fastsd.sweep_optimal_chunked(
        dec, theta, var, LAMS, K, memory_limit=optimal_limit(20, 5, 3)
    )
    assert_allclose(got, risk, rtol=RTOL, atol=0)


@pytest.mark.parametrize("which", ["risk", "optimal"])
def test_memmap_X(which, tmp_path):
    """X as a numpy.memmap (read block by block) gives the in-memory result."""
    X, theta, var = make_batch(3, B=4)
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    del mm
    Xm = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    if which == "risk":
        want = fastsd.sweep_risk(X, theta, var, LAMS, XIS, K)
        got = fastsd.sweep_risk_chunked(
            Xm, theta, var, LAMS, XIS, K, memory_limit=risk_limit(20, 5, 4, 4)
        )
        assert_allclose(got, want, rtol=RTOL, atol=0)
        best = fastsd.sweep_risk_chunked(
            Xm, theta, var, LAMS, XIS, K, reduce="min", memory_limit=risk_limit(20, 5, 4, 4)
        )
        flat = np.moveaxis(want, -1, 1).reshape(4, K + 1, -1)
        assert_allclose(best.risk, flat.min(axis=-1), rtol=RTOL, atol=0)
    else:
        want, _ = fastsd.sweep_optimal(X, theta, var, LAMS, K)
        got, _ = fastsd.sweep_optimal_chunked(
            Xm, theta, var, LAMS, K, memory_limit=optimal_limit(20, 5, 4)
        )
        assert_allclose(got, want, rtol=RTOL, atol=0)


# ----------------------------------------------------------------------------
# reduce="min"
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("xis", [XIS, SCHED], ids=["constant", "explicit"])
def test_risk_reduce_min_is_min_and_argmin_of_full(xis, backend):
    X, theta, var = make_batch(4)
    B = X.shape[0]
    G = xis.shape[0]
    limit = risk_limit(20, 5, G, 3, backend)
    full = fastsd.sweep_risk_chunked(
        X, theta, var, LAMS, xis, K, memory_limit=limit, backend=backend
    )
    best = fastsd.sweep_risk_chunked(
        X, theta, var, LAMS, xis, K, reduce="min", memory_limit=limit, backend=backend
    )
    assert isinstance(best, fastsd.BestRisk)
    assert best.xi is None
    assert best.risk.shape == best.lam_index.shape == best.xi_index.shape == (B, K + 1)
    flat = np.moveaxis(full, -1, 1).reshape(B, K + 1, -1)  # (B, K+1, L*G), lambda-major
    arg = flat.argmin(axis=-1)  # first occurrence on ties (k = 0: every schedule ties)
    assert_array_equal(best.risk, flat.min(axis=-1))
    assert_array_equal(best.lam_index, arg // G)
    assert_array_equal(best.xi_index, arg % G)
    assert_array_equal(best.xi_index[:, 0], 0)
    for b in range(B):
        for k in range(K + 1):
            assert full[b, best.lam_index[b, k], best.xi_index[b, k], k] == best.risk[b, k]
    # and against the unchunked sweep
    unchunked = fastsd.sweep_risk(X, theta, var, LAMS, xis, K, backend=backend)
    assert_allclose(
        best.risk, np.moveaxis(unchunked, -1, 1).reshape(B, K + 1, -1).min(-1), rtol=RTOL, atol=0
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_optimal_reduce_min_is_min_and_argmin_of_full(backend):
    X, theta, var = make_batch(5)
    B = X.shape[0]
    limit = optimal_limit(20, 5, 3, backend)
    risk, xi = fastsd.sweep_optimal_chunked(
        X, theta, var, LAMS, K, memory_limit=limit, backend=backend
    )
    rec = Recorder()
    best = fastsd.sweep_optimal_chunked(
        X, theta, var, LAMS, K, reduce="min", memory_limit=limit, backend=backend, progress=rec
    )
    assert_progress_complete(rec)
    assert rec.calls[-1][1] > B  # blocks along problems and lambdas
    assert isinstance(best, fastsd.BestRisk)
    assert best.risk.shape == best.lam_index.shape == (B, K + 1)
    assert best.xi.shape == (B, K, K)
    assert_array_equal(best.risk, risk.min(axis=1))
    assert_array_equal(best.lam_index, risk.argmin(axis=1))
    assert_array_equal(best.xi_index, 0)
    for b in range(B):
        for k in range(1, K + 1):
            # row k - 1 of BestRisk.xi is the k-step xi row at the best lambda
            assert_array_equal(best.xi[b, k - 1], xi[b, best.lam_index[b, k], k - 1])
    assert np.all(np.diff(best.risk, axis=-1) <= 1e-13 * best.risk[:, :1])


def test_reduce_min_ties_keep_first_lambda():
    """Identical lambdas (exact ties across blocks) report the first index."""
    X, theta, var = make_batch(6, B=3)
    lams = np.array([1.0] * 7)
    best = fastsd.sweep_risk_chunked(
        X, theta, var, lams, XIS, K, reduce="min", memory_limit=risk_limit(20, 5, 4, 2)
    )
    assert_array_equal(best.lam_index, 0)
    best = fastsd.sweep_optimal_chunked(
        X, theta, var, lams, K, reduce="min", memory_limit=optimal_limit(20, 5, 2)
    )
    assert_array_equal(best.lam_index, 0)


# ----------------------------------------------------------------------------
# memory bound
# ----------------------------------------------------------------------------

MEMORY_CASES = [
    # (B, n, d, L, G, K, memory_limit): full risk grid well over the limit
    (40, 24, 6, 64, 16, 8, 1 << 20),
    (8, 30, 60, 200, 32, 8, 1 << 20),  # d > n
    (16, 16, 4, 100, 100, 4, 256 << 10),  # many schedules, small problems
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", MEMORY_CASES, ids=lambda c: "x".join(map(str, c[:6])))
@pytest.mark.parametrize("which", ["risk", "optimal"])
def test_peak_memory_under_limit(which, case, backend):
    B, n, d, L, G, steps, limit = case
    rng = np.random.default_rng(7)
    X = rng.normal(size=(B, n, d))
    theta = rng.normal(size=(B, d))
    lams = np.logspace(-4, 4, L)
    xis = np.linspace(-1.0, 2.0, G)
    if which == "risk":
        assert B * L * G * (steps + 1) * 8 > limit  # the full result would not fit

        def run():
            return fastsd.sweep_risk_chunked(
                X, theta, 1.0, lams, xis, steps, reduce="min", memory_limit=limit, backend=backend
            )
    else:

        def run():
            return fastsd.sweep_optimal_chunked(
                X, theta, 1.0, lams, steps, reduce="min", memory_limit=limit, backend=backend
            )

    run()  # warm-up (JIT, lazily allocated module state)
    tracemalloc.start()
    try:
        best = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert best.risk.shape == (B, steps + 1)
    assert peak <= limit, f"peak {peak:,} bytes over memory_limit={limit:,} ({peak / limit:.3f}x)"


@pytest.mark.parametrize("which", ["risk", "optimal"])
def test_memory_limit_errors(which):
    X, theta, var = make_batch(8)
    lams = np.logspace(-8, 8, 40)
    if which == "risk":

        def run(**kw):
            return fastsd.sweep_risk_chunked(X, theta, var, lams, XIS, K, **kw)
    else:

        def run(**kw):
            return fastsd.sweep_optimal_chunked(X, theta, var, lams, K, **kw)

    # too small for a single problem
    for limit in (1, 1000, _per_problem(20, 5)):
        with pytest.raises(ValueError, match="memory_limit"):
            run(memory_limit=limit)
        with pytest.raises(ValueError, match="memory_limit"):
            run(memory_limit=limit, reduce="min")
    for limit in (0, -5):
        with pytest.raises(ValueError, match="memory_limit"):
            run(memory_limit=limit)
    # blocks fit, but the full result does not and no out= is given
    limit = risk_limit(20, 5, 4, 2) if which == "risk" else optimal_limit(20, 5, 2)
    full = 5 * lams.size * (4 * (K + 1) if which == "risk" else K + 1 + K * K) * 8
    assert full > limit
    with pytest.raises(ValueError, match="memory_limit"):
        run(memory_limit=limit)
    # ... while reduce="min" works under the same limit
    assert run(memory_limit=limit, reduce="min").risk.shape == (5, K + 1)


def test_bad_arguments_rejected():
    X, theta, var = make_batch(9)
    for fn, args in ((fastsd.sweep_risk_chunked, (XIS, K)), (fastsd.sweep_optimal_chunked, (K,))):
        with pytest.raises(ValueError, match="reduce"):
            fn(X, theta, var, LAMS, *args, reduce="max")
        with pytest.raises(ValueError, match="backend"):
            fn(X, theta, var, LAMS, *args, backend="cuda")
        with pytest.raises(ValueError, match="lams"):
            fn(X, theta, var, [], *args)
        with pytest.raises(ValueError, match="lams"):
            fn(X, theta, var, [1.0, np.nan], *args)
        with pytest.raises(ValueError, match="lams"):
            fn(X, theta, var, [-1.0], *args)
        with pytest.raises(ValueError, match="theta_star"):
            fn(X, theta[:, :2], var, LAMS, *args)
        with pytest.raises(ValueError, match="X"):
            fn(X[0], theta[0], var[0], LAMS, *args)
    with pytest.raises(ValueError, match="max_steps"):
        fastsd.sweep_risk_chunked(X, theta, var, LAMS, XIS, -1)
    with pytest.raises(TypeError, match="max_steps"):
        fastsd.sweep_optimal_chunked(X, theta, var, LAMS, 2.0)
    with pytest.raises(ValueError, match="xis"):
        fastsd.sweep_risk_chunked(X, theta, var, LAMS, np.zeros((2, K + 1)), K)
    with pytest.raises(ValueError, match="out"):
        fastsd.sweep_risk_chunked(X, theta, var, LAMS, XIS, K, out=np.empty((1, 2, 3, 4)))


# ----------------------------------------------------------------------------
# progress and interruption
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["risk", "optimal"])
def test_interrupted_run_keeps_finished_blocks(which, tmp_path):
    """A KeyboardInterrupt from the progress callable after 3 blocks leaves those
    3 blocks (and nothing else) written in the memmap ``out``."""
    X, theta, var = make_batch(10)
    B = X.shape[0]
    lb = 3  # lambdas per block, one problem per block
    if which == "risk":
        limit = risk_limit(20, 5, XIS.size, lb)
        want = fastsd.sweep_risk(X, theta, var, LAMS, XIS, K)
        shapes = [want.shape]
    else:
        limit = optimal_limit(20, 5, lb)
        want_risk, want_xi = fastsd.sweep_optimal(X, theta, var, LAMS, K)
        shapes = [want_risk.shape, want_xi.shape]
    paths = [tmp_path / f"out{i}.npy" for i in range(len(shapes))]
    outs = [
        np.lib.format.open_memmap(p, mode="w+", dtype=np.float64, shape=s)
        for p, s in zip(paths, shapes)
    ]
    for o in outs:
        o[:] = -1.0  # sentinel: never a risk
        o.flush()
    rec = Recorder(stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        if which == "risk":
            fastsd.sweep_risk_chunked(
                X, theta, var, LAMS, XIS, K, memory_limit=limit, out=outs[0], progress=rec
            )
        else:
            fastsd.sweep_optimal_chunked(
                X, theta, var, LAMS, K, memory_limit=limit, out=tuple(outs), progress=rec
            )
    total = B * -(-LAMS.size // lb)
    assert rec.calls == [(1, total), (2, total), (3, total)]
    del outs
    disk = [np.load(p, mmap_mode="r") for p in paths]
    written = np.zeros((B, LAMS.size), dtype=bool)
    written[0, : 3 * lb] = True  # blocks (problem 0, lambdas 0-2, 3-5, 6-8)
    if which == "risk":
        assert_allclose(disk[0][written], want[written], rtol=RTOL, atol=0)
        assert np.all(disk[0][~written] == -1.0)
    else:
        assert_allclose(disk[0][written], want_risk[written], rtol=RTOL, atol=0)
        assert_array_equal(np.isnan(disk[1][written]), np.isnan(want_xi[written]))
        assert np.all(disk[0][~written] == -1.0)
        assert np.all(disk[1][~written] == -1.0)


def test_progress_callable_every_block():
    X, theta, var = make_batch(11, B=4)
    rec = Recorder()
    fastsd.sweep_risk_chunked(
        X,
        theta,
        var,
        LAMS,
        XIS,
        K,
        reduce="min",
        memory_limit=risk_limit(20, 5, 4, 5),
        progress=rec,
    )
    assert_progress_complete(rec)
    assert rec.calls[-1] == (8, 8)  # 4 problems x 2 lambda blocks
    rec = Recorder()
    fastsd.sweep_optimal_chunked(
        X, theta, var, LAMS, K, memory_limit=optimal_limit(20, 5, 10), progress=rec
    )
    assert_progress_complete(rec)
    assert rec.calls[-1] == (4, 4)  # one problem per block, all lambdas
