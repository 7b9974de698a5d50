"""The paper's UCI protocol: closed-form validation choices match brute force."""

import numpy as np
import pytest

import fastsd
from fastsd.datasets import load_split
from fastsd.experiments.uci import alignment, lambda_grid, run_protocol, summarize


@pytest.fixture(scope="module")
def airfoil_rows():
    return run_protocol("airfoil", [0, 1], max_steps=3, num_lams=9)


def test_rows_layout(airfoil_rows):
    rows = airfoil_rows
    assert set(rows) == {"dataset", "seed", "k", "lam", "xi", "val_mse", "test_mse"}
    assert rows["k"].tolist() == [0, 1, 2, 3] * 2
    assert np.all(np.isfinite(rows["test_mse"]))
    # the number of recorded xi equals k
    assert [len(x.split()) for x in rows["xi"]] == rows["k"].tolist()


def test_validation_choice_beats_brute_force_grid(airfoil_rows):
    """For k = 1, 2 the closed-form (lambda, xi) is at least as good on validation as a
    brute-force grid over xi (at every lambda of the grid), and close to its best."""
    sp = load_split("airfoil", seed=0)
    lams = lambda_grid(sp.X_train.shape[0], 9)
    rows = airfoil_rows
    grid1 = np.linspace(-6, 3, 181)
    for k in (1, 2):
        chosen = rows["val_mse"][(rows["seed"] == 0) & (rows["k"] == k)][0]
        if k == 1:
            schedules = grid1[:, None]
        else:
            g = np.linspace(-4, 3, 57)
            schedules = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
        mse = fastsd.sweep_mse(sp.X_train, sp.y_train, sp.X_val, sp.y_val, lams, schedules, k)
        brute = mse[:, :, k].min()
        assert chosen <= brute * (1 + 1e-10)
        assert chosen >= brute * (1 - 0.05)  # the grid is fine enough to come close


def test_test_mse_recomputed(airfoil_rows):
    rows = airfoil_rows
    sp = load_split("airfoil", seed=1)
    i = np.flatnonzero((rows["seed"] == 1) & (rows["k"] == 2))[0]
    xi = np.array(rows["xi"][i].split(), float)
    theta = fastsd.self_distill(sp.X_train, sp.y_train, rows["lam"][i], xi)
    np.testing.assert_allclose(
        np.mean((sp.y_test - sp.X_test @ theta) ** 2), rows["test_mse"][i], rtol=1e-5
    )  # xi printed with 6 digits


def test_summary(airfoil_rows):
    table = summarize(airfoil_rows)
    assert table["k"].tolist() == [0, 1, 2, 3]
    assert table["change_vs_ridge"][0] == 0
    test = airfoil_rows["test_mse"][airfoil_rows["k"] == 2]
    np.testing.assert_allclose(table["test_mse_mean"][2], test.mean())
    np.testing.assert_allclose(table["test_mse_std"][2], test.std(ddof=1))


def test_alignment_is_a_distribution():
    eig, cos2 = alignment("airfoil", seed=0, num_lams=9)
    assert eig.shape == cos2.shape == (5,)
    assert np.all(np.diff(eig) <= 0)
    np.testing.assert_allclose(cos2.sum(), 1.0)
    assert np.all(cos2 >= 0)


def test_backends_agree():
    a = run_protocol("airfoil", [3], max_steps=2, num_lams=5, backend="numba")
    b = run_protocol("airfoil", [3], max_steps=2, num_lams=5, backend="numpy")
    np.testing.assert_allclose(a["val_mse"], b["val_mse"], rtol=1e-10)
    np.testing.assert_allclose(a["lam"], b["lam"])
