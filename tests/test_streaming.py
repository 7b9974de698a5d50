"""Streamed designs (.npy path, memmap, Zarr, Dask, iterator of blocks) equal in-memory ones."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import fastsd

# These tests compare sweeps across backends, paths, block plans and executors on random
# problems, where some optimal xi are unrecoverable by construction: the warning is a side
# effect here (it is tested in test_optimal.py, test_xi_acceptance.py and test_sweep_store.py).
pytestmark = pytest.mark.filterwarnings("ignore::fastsd.exceptions.IllConditionedXiWarning")

N, D = 120, 6
LAMS = np.logspace(-2, 2, 5)
XIS = np.array([-0.5, 0.5, 1.5])
K = 3
BLOCKS = [40, 7, N, 1]  # divides n, does not, a single block, one row per block
KINDS = ["npy", "memmap", "zarr", "dask", "iterator"]


def _data(seed=0, n=N, d=D):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(1, 3, d)
    return X, rng.normal(size=n), rng.normal(size=d)


def _as_kind(kind, arr, rows, tmp_path, name):
    """arr in the streamed form ``kind`` (rows per block / chunk)."""
    if kind == "npy":
        path = tmp_path / f"{name}.npy"
        np.save(path, arr)
        return str(path)
    if kind == "memmap":
        out = np.lib.format.open_memmap(tmp_path / f"{name}_mm.npy", mode="w+", shape=arr.shape)
        out[...] = arr
        out.flush()
        return np.load(tmp_path / f"{name}_mm.npy", mmap_mode="r")
    if kind == "zarr":
        zarr = pytest.importorskip("zarr")
        return zarr.array(arr, chunks=(rows,) + arr.shape[1:])
    if kind == "dask":
        da = pytest.importorskip("dask.array")
        return da.from_array(arr, chunks=(rows,) + arr.shape[1:])
    return iter([arr[i : i + rows] for i in range(0, arr.shape[0], rows)])


def _risks(dec, theta):
    return (
        fastsd.sweep_risk(dec, theta, 0.5, LAMS, XIS, K),
        fastsd.sweep_optimal(dec, theta, 0.5, LAMS, K)[0],
    )


@pytest.mark.parametrize("rows", BLOCKS)
@pytest.mark.parametrize("kind", KINDS)
def test_streamed_equals_in_memory(kind, rows, tmp_path):
    X, y, theta = _data()
    ref = fastsd.decompose(X, y)
    Xs = _as_kind(kind, X, rows, tmp_path, "X")
    ys = _as_kind(kind, y, rows, tmp_path, "y")
    dec = fastsd.decompose(Xs, ys, block_rows=rows)
    assert dec.n_samples == N and dec.n_features == D and dec.method == "gram"
    assert_allclose(dec.s2, ref.s2, rtol=1e-12, atol=0)
    assert_allclose(dec.y_norm2, ref.y_norm2, rtol=1e-12)
    # z and V are defined up to the sign of each column: compare V z and |z|
    assert_allclose(dec.V @ dec.z, ref.V @ ref.z, rtol=1e-12, atol=1e-12 * np.abs(ref.z).max())
    for got, want in zip(_risks(dec, theta), _risks(ref, theta)):
        assert_allclose(got, want, rtol=1e-12, atol=0)
    assert_allclose(
        fastsd.self_distill(dec, None, LAMS, [0.5, 2.0]),
        fastsd.self_distill(ref, None, LAMS, [0.5, 2.0]),
        rtol=1e-10,
    )


@pytest.mark.parametrize("kind", ["npy", "memmap", "zarr", "dask"])
def test_streamed_U_and_new_targets_take_one_more_pass(kind, tmp_path):
    X, y, _ = _data(1)
    dec = fastsd.decompose(_as_kind(kind, X, 16, tmp_path, "X"), block_rows=16)
    assert dec.z is None
    assert_allclose((dec.U * dec.s) @ dec.V.T, X, atol=1e-12 * np.linalg.norm(X, 2))
    assert_allclose(
        dec.project_y(y), dec.V.T @ (X.T @ y), rtol=1e-12, atol=1e-12 * np.linalg.norm(X.T @ y)
    )


def test_in_memory_y_with_streamed_x_and_wide_x(tmp_path):
    X, y, theta = _data(2, n=10, d=25)  # d > n: p = n of the d x d Gram
    dec = fastsd.decompose(_as_kind("npy", X, 3, tmp_path, "X"), y, block_rows=3)
    ref = fastsd.decompose(X, y)
    assert dec.s2.shape == (10,) and int(dec.rank) == 10
    assert_allclose(dec.s2, ref.s2, rtol=1e-11)
    for got, want in zip(_risks(dec, theta), _risks(ref, theta)):
        assert_allclose(got, want, rtol=1e-10)


def test_iterator_gives_no_U(tmp_path):
    X, _, _ = _data()
    dec = fastsd.decompose(iter([X[:60], X[60:]]))
    with pytest.raises(ValueError, match="iterator of blocks"):
        _ = dec.U


def _blocks(X, rows=3):
    return [X[i : i + rows] for i in range(0, X.shape[0], rows)]


def test_bad_blocks_are_named(tmp_path):
    X, y, _ = _data(n=120)
    blocks = _blocks(X)
    nan = [b.copy() for b in blocks]
    nan[37][1, 2] = np.nan
    with pytest.raises(ValueError, match=r"X block 37 contains NaN .*row 112, column 2"):
        fastsd.decompose(iter(nan))
    wide = list(blocks)
    wide[5] = np.ones((3, D + 1))
    with pytest.raises(ValueError, match=r"X block 5 \(rows 15\.\.\) has 7 columns, but X has 6"):
        fastsd.decompose(iter(wide))
    ragged = list(blocks)
    ragged[2] = [[1.0] * D, [1.0] * (D - 1)]
    with pytest.raises(ValueError, match=r"X block 2 .*ragged"):
        fastsd.decompose(iter(ragged))
    with pytest.raises(ValueError, match=r"y block 1 has 2 rows, X block 1 has 3"):
        fastsd.decompose(iter(blocks), iter([y[:3], y[3:5]]))
    with pytest.raises(ValueError, match=r"y must have shape \(120,\)"):
        fastsd.decompose(_as_kind("npy", X, 3, tmp_path, "X"), y[:-1])
    with pytest.raises(ValueError, match="y has more rows"):
        fastsd.decompose(iter(blocks), iter(_blocks(np.append(y, 1.0))))
    txt = tmp_path / "X.csv"
    txt.write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match=r"X.csv' is not a \.npy file"):
        fastsd.decompose(str(txt))
    fake = tmp_path / "fake.npy"
    fake.write_bytes(b"not an array")
    with pytest.raises(ValueError, match=r"fake.npy' is not a \.npy file"):
        fastsd.decompose(str(fake))
    with pytest.raises(ValueError, match="no such file"):
        fastsd.decompose(str(tmp_path / "missing.npy"))
    with pytest.raises(ValueError, match="svd"):
        fastsd.decompose(str(tmp_path / "missing.npy"), method="svd")
    with pytest.raises(ValueError, match="block_rows applies to a streamed X"):
        fastsd.decompose(X, block_rows=10)


def test_dask_nan_is_an_error():
    da = pytest.importorskip("dask.array")
    X, _, _ = _data()
    X[77, 1] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or infinite"):
        fastsd.decompose(da.from_array(X, chunks=(25, D)))


def test_thread_count_does_not_change_results(tmp_path):
    """Bitwise: the Gram is cut into chunks by shape, never by thread count."""
    rng = np.random.default_rng(3)
    # sizes above SERIAL_FLOPS, so that the threaded routes run
    for X in (
        rng.normal(size=(100_000, 16)),
        rng.normal(size=(16, 100_000)),
        rng.normal(size=(5, 3000, 40)),
    ):
        one = fastsd.decompose(X, threads=1)
        two = fastsd.decompose(X, threads=2)
        assert_array_equal(one.s2, two.s2)
        assert_array_equal(one.V, two.V)
    path = _as_kind("npy", X[0], 1000, tmp_path, "X")
    assert_array_equal(
        fastsd.decompose(path, block_rows=1000, threads=1).s2,
        fastsd.decompose(path, block_rows=1000, threads=2).s2,
    )


def test_dask_distributed_cluster():
    """X^T X on a 2-process LocalCluster (bound to 127.0.0.1), equal to in memory."""
    distributed = pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")
    X, y, theta = _data(4, n=400)
    ref = fastsd.decompose(X, y)
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False},
    )
    try:
        with distributed.Client(cluster, timeout="30s") as client:
            Xd = client.persist(da.from_array(X, chunks=(50, D)))
            yd = client.persist(da.from_array(y, chunks=(50,)))
            dec = fastsd.decompose(Xd, yd)
            U = dec.U  # one more distributed pass
    finally:
        cluster.close(timeout=30)
    assert_allclose(dec.s2, ref.s2, rtol=1e-12)
    for got, want in zip(_risks(dec, theta), _risks(ref, theta)):
        assert_allclose(got, want, rtol=1e-12)
    assert_allclose((U * dec.s) @ dec.V.T, X, atol=1e-12 * np.linalg.norm(X, 2))


#: Peak RSS of this process image (VmHWM): unlike ru_maxrss, it does not carry
#: over the (large) pytest parent's peak across fork + exec.
_PEAK_RSS = """def peak_rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
"""


def _run(script, *args):
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc/self/status (Linux) to read the peak RSS")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(fastsd.__file__))] + sys.path),
    )
    script = script.replace("PEAK_RSS", _PEAK_RSS)  # scripts are dedented: column 0
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_in_memory_gram_route_needs_x_plus_o_d2():
    """decompose of a tall X (no U): peak RSS = X + O(d^2), never a copy of X."""
    res = _run(
        textwrap.dedent("""
        import json
        import numpy as np
        import fastsd
        PEAK_RSS
        fastsd.decompose(np.ones((300, 20)))  # load everything once
        X = np.random.default_rng(0).normal(size=(100_000, 200))  # 160 MB
        base = peak_rss()
        dec = fastsd.decompose(X)
        peak = peak_rss()
        print(json.dumps(dict(base=base, peak=peak, rank=int(dec.rank))))
    """)
    )
    assert res["rank"] == 200
    assert res["peak"] - res["base"] < 24e6, res  # d^2 = 0.3 MB; X = 160 MB


_MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastsd
    PEAK_RSS
    path, reps = sys.argv[1], int(sys.argv[2])
    base = peak_rss()
    dec = fastsd.decompose(path)
    peak = peak_rss()
    print(json.dumps(dict(base=base, peak=peak, s2=dec.s2.tolist(), n=dec.n_samples)))
""")


def test_streaming_memory_stays_bounded(tmp_path):
    """A 1.6 GB .npy is decomposed with peak RSS far below its size (subprocess)."""
    rng = np.random.default_rng(5)
    tile = rng.normal(size=(20_000, 100))
    reps = 100  # X = 100 copies of tile: 2e6 x 100, 1.6 GB; X^T X = reps tile^T tile
    path = tmp_path / "big.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (reps * tile.shape[0], 100)}
        )
        for _ in range(reps):
            tile.tofile(f)
    size = os.path.getsize(path)
    assert size >= 1.5e9
    try:
        res = _run(_MEMORY_SCRIPT, path, reps)
    finally:
        path.unlink()
    assert res["n"] == reps * tile.shape[0]
    assert res["peak"] - res["base"] < 200e6, res
    assert res["peak"] < size / 3, res  # baseline (imports, BLAS buffers) ~0.2-0.4 GB
    want = reps * np.linalg.eigvalsh(tile.T @ tile)[::-1]
    assert_allclose(res["s2"], want, rtol=1e-12)
    print(
        f"streamed {size / 1e9:.2f} GB: peak RSS {res['peak'] / 1e6:.0f} MB, "
        f"{res['base'] / 1e6:.0f} MB before decompose"
    )


@pytest.mark.parametrize("rows", [7, 200])
@pytest.mark.parametrize("kind", KINDS)
def test_streamed_validation_set(kind, rows, tmp_path):
    """Validation sweeps with X, y, X_val, y_val all streamed equal the in-memory ones."""
    X, y, _ = _data(6)
    rng = np.random.default_rng(7)
    X_val, y_val = rng.normal(size=(45, D)), rng.normal(size=45)
    dec = fastsd.decompose(
        _as_kind(kind, X, rows, tmp_path, "X"),
        _as_kind(kind, y, rows, tmp_path, "y"),
        block_rows=rows,
    )
    ref = fastsd.decompose(X, y)
    Xv, yv = (
        _as_kind(kind, X_val, rows, tmp_path, "Xv"),
        _as_kind(kind, y_val, rows, tmp_path, "yv"),
    )
    got = fastsd.sweep_optimal_validation(dec, None, Xv, yv, LAMS, K)
    want = fastsd.sweep_optimal_validation(ref, None, X_val, y_val, LAMS, K)
    assert_allclose(got[0], want[0], rtol=1e-11)
    Xv, yv = (
        _as_kind(kind, X_val, rows, tmp_path, "Xv2"),
        _as_kind(kind, y_val, rows, tmp_path, "yv2"),
    )
    assert_allclose(
        fastsd.sweep_mse(dec, None, Xv, yv, LAMS, XIS, K),
        fastsd.sweep_mse(ref, None, X_val, y_val, LAMS, XIS, K),
        rtol=1e-11,
    )


def test_streamed_validation_errors(tmp_path):
    X, y, _ = _data()
    dec = fastsd.decompose(X, y)
    blocks = _blocks(np.ones((12, D)))
    blocks[2] = np.full((3, D), np.nan)
    with pytest.raises(ValueError, match="X_val block 2 contains NaN"):
        fastsd.sweep_optimal_validation(dec, None, iter(blocks), np.ones(12), LAMS, K)
    with pytest.raises(ValueError, match=r"y_val must have shape \(12,\)"):
        fastsd.sweep_optimal_validation(
            dec, None, _as_kind("npy", np.ones((12, D)), 3, tmp_path, "Xv"), np.ones(11), LAMS, K
        )


@pytest.mark.parametrize("kind", ["tall", "wide", "dup", "zero", "wide_dup"])
def test_streamed_nasty_designs(design, kind):
    """Rank-deficient, wide and duplicated-column designs streamed in 3 blocks."""
    X, rank = design(kind, 11)
    rng = np.random.default_rng(11)
    y, theta = rng.normal(size=X.shape[0]), rng.normal(size=X.shape[1])
    dec = fastsd.decompose(iter(np.array_split(X, 3)), iter(np.array_split(y, 3)))
    ref = fastsd.decompose(X, y)
    assert int(dec.rank) == rank == int(ref.rank)
    scale = np.max(ref.s2)
    assert_allclose(dec.s2, ref.s2, rtol=0, atol=10 * max(X.shape) * np.finfo(float).eps * scale)
    for got, want in zip(_risks(dec, theta), _risks(ref, theta)):
        assert_allclose(got, want, rtol=1e-9)
