"""The safe tuning rule, its pieces (nested LOO, admissibility), the GCV guard and the
tuning benchmark / learning curves (tiny configurations)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.linear_model import RidgeCV  # noqa: E402

from fastsd.estimators import SelfDistilledRidge, SelfDistilledRidgeCV, TuningWarning  # noqa: E402
from fastsd.estimators._base import _Prepared  # noqa: E402
from fastsd.estimators._loo import loo_columns, nested_loo  # noqa: E402
from fastsd.estimators._tuning import admissible, shrinkage_factors  # noqa: E402


def _problem(n, d, seed, targets=None, noise=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.3, 3.0, size=d) + rng.normal(size=d)
    shape = (d,) if targets is None else (d, targets)
    eps = noise * rng.normal(size=(n,) if targets is None else (n, targets))
    return X, X @ rng.normal(size=shape) + 1.5 + eps


def _columns(X, y, lams, K, w=None):
    prep = _Prepared(X, y, w, True)
    dec, _ = prep.decompose()
    e0, P, defined = loo_columns(dec.U, dec.s2, prep.Y, prep.sqrt_w, prep.w_sum, True, lams, K)
    return prep, e0, P, defined


def _nasty(kind, n, seed, targets):
    X, y = _problem(n, 5 if kind != "wide" else 30, seed=seed, targets=targets)
    if kind == "rank_deficient":
        X[:, 3] = X[:, 0] - 2.0 * X[:, 1]
    elif kind == "repeated":
        Q = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, 5)))[0]
        X = Q * np.array([3.0, 3.0, 3.0, 1.0, 1.0])
    return X, y


@pytest.mark.parametrize("targets", [None, 3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", ["plain", "wide", "rank_deficient", "repeated"])
def test_nested_loo_equals_leaving_each_point_out_of_the_xi_fit(targets, weighted, kind):
    """nested_loo's closed form = refitting xibar without point i (all its target rows),
    also for d > n, a rank-deficient X and repeated eigenvalues."""
    n, K = 18, 2
    X, y = _nasty(kind, n, 1, targets)
    w = np.random.default_rng(2).uniform(0.5, 2.0, n) if weighted else None
    lams = np.array([0.3, 5.0])
    prep, e0, P, defined = _columns(X, y, lams, K, w)
    risk, losses = nested_loo(e0, P, defined, prep.w_sum)
    T = e0.shape[1]
    for l in range(lams.size):
        np.testing.assert_allclose(risk[l, 0], np.sum(e0[l] ** 2) / (prep.w_sum * T), rtol=1e-12)
        for k in range(1, K + 1):
            brute = np.empty(n)
            for i in range(n):
                keep = np.arange(n) != i
                A = P[l, :k][:, :, keep].reshape(k, -1).T  # rows (t, j != i)
                b = -e0[l][:, keep].ravel()
                xibar = np.linalg.lstsq(A, b, rcond=None)[0]
                res = e0[l][:, i] + xibar @ P[l, :k][:, :, i]
                brute[i] = np.sum(res**2) / T
            if not np.isfinite(risk[l, k]):  # refused: P_1..P_k numerically dependent
                assert np.linalg.matrix_rank(P[l, :k].reshape(k, -1)) < k or not defined[l]
                continue
            np.testing.assert_allclose(losses[l, k], brute, rtol=1e-7, atol=1e-10)
            np.testing.assert_allclose(risk[l, k], brute.sum() / prep.w_sum, rtol=1e-7)


@pytest.mark.parametrize("kind", ["wide", "rank_deficient", "repeated"])
@pytest.mark.parametrize("lams", [np.logspace(-8, 8, 9), np.array([0.0, 1e-8, 1e8])])
def test_safe_on_nasty_inputs_is_finite_and_never_worse_in_loo(kind, lams):
    X, y = _nasty(kind, 24, 7, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = SelfDistilledRidgeCV(lams=lams, max_steps=4).fit(X, y)
    assert np.all(np.isfinite(cv.coef_)) and np.isfinite(cv.intercept_)
    res = cv.cv_results_
    ridge_loo = np.min(res["risk"][:, 0])
    assert -cv.best_score_ <= ridge_loo * (1 + 1e-12)
    if cv.k_:
        assert admissible(_Prepared(X, y, None, True).decompose()[0].s2, res["lams"], res["xi"])[
            res["lams"] == cv.lam_, cv.k_
        ].all()


def test_nested_risk_is_above_the_minimized_loo_risk():
    X, y = _problem(30, 6, seed=3)
    cv = SelfDistilledRidgeCV(lams=np.logspace(-2, 2, 5), max_steps=3).fit(X, y)
    res = cv.cv_results_
    np.testing.assert_allclose(res["nested_risk"][:, 0], res["risk"][:, 0], rtol=1e-12)
    finite = np.isfinite(res["nested_risk"][:, 1:])
    assert finite.any()
    assert np.all(res["nested_risk"][:, 1:][finite] >= res["risk"][:, 1:][finite])


def test_shrinkage_factors_match_the_fitted_coefficients():
    X, y = _problem(25, 4, seed=4)
    lams = np.array([0.5, 20.0])
    prep = _Prepared(X, y, None, True)
    dec, Z = prep.decompose()
    xi = np.full((2, 3, 2), np.nan)
    xi[:, 1, 0] = [0.7, -2.0]
    xi[:, 2, :] = [[1.5, 0.4], [3.0, -0.8]]
    f = shrinkage_factors(dec.s2, lams, xi)
    for l, lam in enumerate(lams):
        for k in range(3):
            coef = SelfDistilledRidge(lam=lam, xi=xi[l, k, :k]).fit(X, y).coef_
            # theta = V diag(f / s^2) z  =>  f = s^2 (V^T theta) / z
            np.testing.assert_allclose(dec.s2 * (dec.V.T @ coef) / Z[:, 0], f[l, k], rtol=1e-8)
    ok = admissible(dec.s2, lams, xi)
    assert ok[:, 0].all()  # ridge's r is in (0, 1]
    inside = np.all((f >= 0) & (f <= 1), axis=-1)
    np.testing.assert_array_equal(ok, inside)


def test_admissible_rejects_the_huge_xi_schedule():
    """Large negative/amplifying factors (the LOO-exploiting schedules) are not admissible."""
    s2 = np.array([80.0, 60.0, 40.0, 20.0])
    lams = np.array([0.01])
    xi = np.full((1, 3, 2), np.nan)
    xi[0, 2] = [-1.0002, 5.08e7]
    f = shrinkage_factors(s2, lams, xi)
    assert f[0, 2].min() < -1 and not admissible(s2, lams, xi)[0, 2]


def test_safe_equals_ridgecv_on_pure_noise():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(80, 6)), rng.normal(size=80)
    lams = np.logspace(-4, 4, 41)
    safe = SelfDistilledRidgeCV(lams=lams, max_steps=2).fit(X, y)
    ref = RidgeCV(alphas=lams).fit(X, y)
    assert safe.k_ == 0 and safe.lam_ == ref.alpha_
    np.testing.assert_allclose(safe.coef_, ref.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(safe.intercept_, ref.intercept_, rtol=1e-8)


def test_safe_chooses_sd_where_it_clearly_helps():
    """Theorem 1's setting with a wide spectrum and theta* on the top direction
    (n = 400, sigma^2 = 9): SD is picked past the margin and the population
    excess risk drops by 40%."""
    from fastsd.experiments.tuning import LAMS

    rng = np.random.default_rng(2)
    scale = np.sqrt(np.linspace(10.0, 1.0, 8))
    X = rng.standard_normal((400, 8)) * scale
    theta = np.eye(8)[0]
    y = X @ theta + 3.0 * rng.standard_normal(400)
    safe = SelfDistilledRidgeCV(lams=LAMS, max_steps=2).fit(X, y)
    ridge = RidgeCV(alphas=LAMS).fit(X, y)
    assert safe.k_ >= 1 and safe.z_score_ < -1.0

    def excess(coef):
        return float(np.sum(scale**2 * (coef - theta) ** 2))

    assert excess(safe.coef_) < 0.7 * excess(ridge.coef_)


def test_gcv_guard_falls_back_to_ridge_with_a_warning():
    X, y = _problem(8, 14, seed=1)  # n < d: GCV is far too optimistic for 1-step SD
    with pytest.warns(TuningWarning, match="exact leave-one-out"):
        cv = SelfDistilledRidgeCV(lams=[4.0], max_steps=1, tuning="gcv").fit(X, y)
    assert cv.k_ == 0 and cv.xi_.size == 0
    X, y = _problem(60, 5, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TuningWarning)
        SelfDistilledRidgeCV(lams=np.logspace(-2, 2, 5), max_steps=1, tuning="gcv").fit(X, y)


def test_gcv_refuses_two_steps_naming_the_fix():
    X, y = _problem(30, 4, seed=6)
    with pytest.raises(ValueError, match="max_steps <= 1.*tuning='safe'"):
        SelfDistilledRidgeCV(max_steps=2, tuning="gcv").fit(X, y)


# ---------------------------------------------------------------------------
# benchmark and learning curves (tiny configurations)
# ---------------------------------------------------------------------------


def test_benchmark_tiny(tmp_path):
    from fastsd.experiments.tuning import (
        format_benchmark,
        gap_closure,
        run_benchmark,
        summarize_benchmark,
    )

    rows = run_benchmark(("diabetes", "theorem1_1"), (0.1,), 2)
    assert set(rows["rule"]) == {"ridgecv", "safe", "loo", "gcv", "holdout", "oracle"}
    assert np.all(rows["change"][rows["rule"] == "ridgecv"] == 0.0)
    assert not np.any((rows["rule"] == "oracle") & (rows["set"] == "diabetes"))
    assert np.all(rows["k"][rows["rule"] == "gcv"] <= 1)
    summary = summarize_benchmark(rows)
    sel = (summary["set"] == "theorem1_1") & (summary["rule"] == "oracle")
    assert summary["n_splits"][sel][0] == 2 and summary["n_train"][sel][0] == 640
    text = format_benchmark(summary)
    assert "| Diabetes (scikit-learn) | 10% (44) |" in text
    assert "Theorem 1 family, σ² = 1" in text
    ((r0, r1, r2, closed),) = gap_closure(summary).values()
    assert r2 < r0 and closed == pytest.approx((r0 - r1) / (r0 - r2))


def test_safe_is_ridgecv_whenever_it_picks_ridge():
    """Paired identity the benchmark relies on: k = 0 means RidgeCV's exact model."""
    from fastsd.experiments.tuning import LAMS, _splits

    for _seed, X, y, evaluate, _ in _splits("airfoil", 0.1, range(2)):
        safe = SelfDistilledRidgeCV(lams=LAMS).fit(X, y)
        ref = RidgeCV(alphas=LAMS).fit(X, y)
        if safe.k_ == 0:
            assert evaluate(safe.coef_, safe.intercept_) == pytest.approx(
                evaluate(ref.coef_, ref.intercept_), rel=1e-9
            )


def test_learning_curve_tiny(tmp_path):
    pytest.importorskip("matplotlib")
    from fastsd.experiments.uci import curve_paragraph, learning_curve, summarize_curves
    from fastsd.plotting import plot_learning_curves, plot_tuning_benchmark

    rows = learning_curve("airfoil", (0.01, 0.1), range(2), steps=(1, 2))
    assert set(rows["model"]) == {"ridge_train", "sd_k1", "sd_k2", "ridgecv_trainval"}
    n = rows["n_train"][rows["share"] == 0.01][0]
    assert n == 15
    summary = summarize_curves(rows)
    here = (
        (summary["share"] == 0.1)
        & (summary["model"] == "sd_k1")
        & (summary["baseline"] == "ridge_train")
    )
    mse = {
        m: rows["test_mse"][(rows["share"] == 0.1) & (rows["model"] == m)]
        for m in ("sd_k1", "ridge_train")
    }
    np.testing.assert_allclose(
        summary["change_mean"][here][0], np.mean(mse["sd_k1"] / mse["ridge_train"] - 1)
    )
    text = curve_paragraph(summary, {"airfoil": "Airfoil Self-Noise"})
    assert text.startswith("**Airfoil Self-Noise**") and "47%" in text
    assert plot_learning_curves(summary, str(tmp_path / "c.png"))
    from fastsd.experiments.tuning import run_benchmark, summarize_benchmark

    bench = summarize_benchmark(run_benchmark(("theorem1_1",), (0.01,), 2, rules=("safe",)))
    assert plot_tuning_benchmark(bench, str(tmp_path / "b.png"))
    assert (tmp_path / "c.png").stat().st_size > 0 and (tmp_path / "b.png").stat().st_size > 0


def test_reproduce_quick_and_full_exclude_each_other(capsys):
    from fastsd.cli import main

    assert main(["reproduce", "--quick", "--full", "--no-progress", "--out", "unused"]) == 2
    assert "full" in capsys.readouterr().err
