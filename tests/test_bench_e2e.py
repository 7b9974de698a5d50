"""fastsd bench --e2e: the harness runs, and its limit computes what decompose computes."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from fastsd import decompose
from fastsd.bench.e2e import format_e2e, limit_loop, limit_parallel, measure_workload
from fastsd.cli import main


@pytest.mark.parametrize("name, shape", [("W3", (3, 400, 24)), ("S", (3000, 12))])
def test_measure_workload_small(name, shape, tmp_path):
    row = measure_workload(name, shape, repeat=1, threads=2, tmpdir=tmp_path)
    for key in ("decompose_s", "limit_loop_s", "limit_parallel_s", "sweeps_s", "gflops"):
        assert row[key] > 0
    assert row["fraction"] == pytest.approx(row["limit_s"] / row["decompose_s"])
    assert not list(tmp_path.iterdir())  # the .npy of S is deleted
    assert f"| {name} {shape}" in format_e2e({"threads": 2, "repeat": 1, name: row})


@pytest.mark.parametrize("shape", [(2, 3000, 20), (40, 300)])
def test_limit_routines_compute_what_decompose_computes(shape):
    X = np.random.default_rng(0).normal(size=shape)
    s2 = decompose(X).s2.reshape(-1, min(shape[-2:]))
    for got in (limit_loop(X), limit_parallel(X, 2)):  # ascending, descending
        assert_allclose(np.sort(np.array(got), axis=-1)[:, ::-1], s2, rtol=1e-12)


def test_cli_bench_options_reach_the_bench_parser(capsys):
    for argv, message in (
        (["bench", "--e2e", "--workloads", "W9"], "unknown ['W9']"),
        (["bench", "--repeat", "0"], "--repeat must be >= 1"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
