"""The synthetic problem families: shapes, spectra, alignment, seeding, validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fastsd
from fastsd import problems
from fastsd.problems import (
    ProblemBatch,
    concat_batches,
    repeated_singular_values,
    singular_gap_family,
    spread_theta,
    theorem1_family,
)


def _cos2(batch, method="svd"):
    """Squared cosines (B, p) of theta* with the eigenvectors found by fastsd.decompose."""
    dec = batch.decompose(method=method)
    t = np.einsum("bdp,bd->bp", dec.V, batch.theta_star)
    return dec, t**2 / np.sum(batch.theta_star**2, axis=-1, keepdims=True)


# --------------------------------------------------------------------------- Theorem 1


def test_theorem1_shapes_and_labels():
    batch = theorem1_family([2, 3, 5], n=40, seed=1)
    assert isinstance(batch, ProblemBatch)
    assert batch.X.shape == (3, 40, 5)
    assert batch.theta_star.shape == (3, 5)
    assert batch.noise_var.shape == (3,)
    assert batch.singular_values.shape == (3, 5)
    assert batch.eigvecs.shape == (3, 5, 5)
    assert len(batch) == batch.batch_size == 3
    assert (batch.n_samples, batch.n_features) == (40, 5)
    assert batch.labels["rank"].tolist() == [2, 3, 5]
    assert batch.meta["family"] == "theorem1"
    np.testing.assert_allclose(np.linalg.norm(batch.theta_star, axis=1), 1.0)


def test_theorem1_default_d_and_n():
    batch = theorem1_family([2, 7])
    assert batch.n_features == 7 and batch.n_samples == 128
    assert theorem1_family([3], d=100).n_samples == 200


@pytest.mark.parametrize("align", ["top", "bottom"])
def test_theorem1_distinct_spectrum_and_alignment(align):
    ranks = [1, 2, 4, 6]
    batch = theorem1_family(ranks, d=8, n=32, align=align, seed=3)
    dec, cos2 = _cos2(batch)
    for b, r in enumerate(ranks):
        s2 = dec.s2[b]
        assert dec.rank[b] == r
        # r distinct nonzero singular values, as constructed
        np.testing.assert_allclose(np.sqrt(s2[:r]), batch.singular_values[b, :r], rtol=1e-12)
        assert np.all(batch.singular_values[b, r:] == 0)
        if r > 1:
            assert np.min(-np.diff(s2[:r])) > 1e-3 * s2[0]
        # theta* lies on exactly one eigenvector: squared cosine 1 there, 0 elsewhere
        j = 0 if align == "top" else r - 1
        assert batch.labels["align_index"][b] == j
        assert cos2[b, j] == pytest.approx(1.0, abs=1e-12)
        assert np.sum(np.delete(cos2[b], j)) == pytest.approx(0.0, abs=1e-12)


def test_theorem1_singular_values_of_X():
    batch = theorem1_family([3, 4], n=20, spread=0.6, seed=0)
    for b in range(2):
        s = np.linalg.svd(batch.X[b], compute_uv=False)
        np.testing.assert_allclose(s, batch.singular_values[b], atol=1e-12 * s[0])
        r = batch.labels["rank"][b]
        levels = batch.singular_values[b, :r] ** 2 / 20
        np.testing.assert_allclose(levels, 1 - 0.6 * np.arange(r) / r)
    # the eigenvectors stored are those of X^T X
    V, s = batch.eigvecs[1], batch.singular_values[1]
    np.testing.assert_allclose(batch.X[1].T @ batch.X[1] @ V, V * s**2, atol=1e-10)


@pytest.mark.filterwarnings(
    "ignore::fastsd.exceptions.IllConditionedXiWarning"
)  # compares risks only
def test_seeding_changes_matrices_not_risks():
    a = theorem1_family([2, 4], seed=5)
    b = theorem1_family([2, 4], seed=5)
    c = theorem1_family([2, 4], seed=np.random.default_rng(6))
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.allclose(a.X, c.X)
    lams = np.logspace(-2, 3, 7)
    ra, _ = a.sweep_optimal(lams, 4)
    rc, _ = c.sweep_optimal(lams, 4)
    np.testing.assert_allclose(ra, rc, rtol=1e-9)


def test_batch_is_read_only():
    batch = theorem1_family([2])
    with pytest.raises(ValueError):
        batch.X[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        batch.labels["rank"][0] = 3
    with pytest.raises(AttributeError):
        batch.X = None


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(ranks=[]), "ranks"),
        (dict(ranks=[0, 2]), "ranks"),
        (dict(ranks=[[2, 3]]), "ranks"),
        (dict(ranks=[2, 5], d=4), "d"),
        (dict(ranks=[4], n=3), "n"),
        (dict(ranks=[2], noise_var=0.0), "noise_var"),
        (dict(ranks=[2], noise_var=np.inf), "noise_var"),
        (dict(ranks=[2], spread=1.0), "spread"),
        (dict(ranks=[2], spread=0.0), "spread"),
        (dict(ranks=[2], align="middle"), "align"),
        (dict(ranks=[2], theta_norm=-1.0), "theta_norm"),
    ],
)
def test_theorem1_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        theorem1_family(**kwargs)


def test_type_errors():
    with pytest.raises(TypeError, match="ranks"):
        theorem1_family([2.5])
    with pytest.raises(TypeError, match="seed"):
        theorem1_family([2], seed="zero")
    with pytest.raises(TypeError, match="noise_var"):
        theorem1_family([2], noise_var="big")


# --------------------------------------------------------------------------- violations


def test_repeated_values_are_repeated():
    batch = repeated_singular_values(4, n=16, seed=2)
    dec = batch.decompose()
    assert batch.X.shape == (1, 16, 4)
    np.testing.assert_allclose(dec.s2[0], 16.0, rtol=1e-12)
    assert np.unique(dec.s2[0]).size == 1  # merged to one exact value
    _, cos2 = _cos2(batch)
    assert cos2[0].sum() == pytest.approx(1.0)
    assert batch.labels["case"][0] == "repeated singular values"


def test_repeated_two_levels():
    batch = repeated_singular_values(6, n_distinct=2, n=12)
    s2 = batch.decompose().s2[0]
    assert np.unique(np.round(s2, 8)).size == 2
    np.testing.assert_allclose(s2[:3], s2[0])
    np.testing.assert_allclose(s2[3:], s2[3])
    assert s2[0] > s2[3]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(d=4, n_distinct=4), "n_distinct"),
        (dict(d=4, n_distinct=3), "n_distinct"),
        (dict(d=1), "d"),
    ],
)
def test_repeated_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        repeated_singular_values(**kwargs)


def test_spread_theta_cosines():
    batch = spread_theta(5, n=20, seed=4)
    dec, cos2 = _cos2(batch)
    assert np.min(-np.diff(dec.s2[0])) > 0.05 * dec.s2[0, 0]  # distinct values
    np.testing.assert_allclose(cos2[0], 0.2, rtol=1e-10)
    assert batch.labels["max_cos2"][0] == pytest.approx(0.2)

    w = np.array([0.5, 0.0, 0.25, 0.25])
    _, cos2 = _cos2(spread_theta(4, weights=2 * w))
    np.testing.assert_allclose(cos2[0], w, atol=1e-12)


@pytest.mark.parametrize("weights", [[1.0, 0, 0, 0], [1.0, -1.0, 1.0, 1.0], [1.0, 1.0]])
def test_spread_theta_validation(weights):
    with pytest.raises(ValueError, match="weights"):
        spread_theta(4, weights=weights)


# --------------------------------------------------------------------------- gaps


def test_gap_family():
    gaps = [0.3, 0.1, 0.01]
    batch = singular_gap_family(gaps, p=3, n=16)
    assert batch.X.shape == (3, 16, 3)
    s = np.sqrt(batch.decompose(method="svd").s2)
    rel = -np.diff(s, axis=1) / s[:, :1]
    np.testing.assert_allclose(rel, np.repeat(np.array(gaps)[:, None], 2, axis=1), rtol=1e-9)
    _, cos2 = _cos2(batch)
    np.testing.assert_allclose(cos2[:, 0], 1.0, atol=1e-9)


@pytest.mark.parametrize("gaps, p", [([0.0], 3), ([0.5], 3), ([-0.1], 2), ([], 2), ([0.1], 1)])
def test_gap_validation(gaps, p):
    with pytest.raises(ValueError, match="gaps|p"):
        singular_gap_family(gaps, p=p)


# --------------------------------------------------------------------------- container


@pytest.mark.filterwarnings(
    "ignore::fastsd.exceptions.IllConditionedXiWarning"
)  # compares risks only
def test_concat_and_sweep():
    a = theorem1_family([4], d=4, n=32)
    b = repeated_singular_values(4, n=32)
    with pytest.raises(ValueError, match="label"):
        concat_batches(a, b)
    a = dataclasses.replace(a, labels={"case": np.array(["a"])})
    b = dataclasses.replace(b, labels={"case": np.array(["b"])})
    both = concat_batches(a, b)
    assert both.X.shape == (2, 32, 4)
    assert both.labels["case"].tolist() == ["a", "b"]
    risk, xi = both.sweep_optimal(np.logspace(-2, 2, 5), 4)
    assert risk.shape == (2, 5, 5) and xi.shape == (2, 5, 4, 4)
    direct, _ = fastsd.sweep_optimal(
        both.X, both.theta_star, both.noise_var, np.logspace(-2, 2, 5), 4
    )
    np.testing.assert_allclose(risk, direct, rtol=1e-9)
    with pytest.raises(ValueError, match="share"):
        concat_batches(a, theorem1_family([2], d=3, n=32))


def test_module_exports():
    for name in problems.__all__:
        assert hasattr(problems, name)
