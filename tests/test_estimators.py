"""scikit-learn estimators: API compliance, agreement with fastsd and sklearn, errors."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastsd  # noqa: E402
from fastsd.estimators import (  # noqa: E402
    DEFAULT_LAMS,
    SelfDistilledRidge,
    SelfDistilledRidgeCV,
    format_tuning_table,
    tuning_table,
)

# ---------------------------------------------------------------------------
# scikit-learn's estimator checks
# ---------------------------------------------------------------------------

ESTIMATORS = [
    SelfDistilledRidge(),
    SelfDistilledRidge(lam=0.3, xi=(0.5, 1.5)),
    SelfDistilledRidge(lam=2.0, xi=[-0.4], fit_intercept=False),
    SelfDistilledRidgeCV(),
    SelfDistilledRidgeCV(tuning="loo", max_steps=3),
    SelfDistilledRidgeCV(tuning="gcv"),
    SelfDistilledRidgeCV(tuning="holdout", random_state=0),
]

_WEIGHT_REASON = (
    "integer sample weights cannot equal repeated samples for leave-one-out "
    "(a repeated sample stays in its own training set) or a random holdout split"
)


def _expected_failures(estimator):
    if isinstance(estimator, SelfDistilledRidgeCV) and estimator.tuning in (
        "safe",
        "loo",
        "holdout",
    ):
        return {"check_sample_weight_equivalence_on_dense_data": _WEIGHT_REASON}
    return {}


_kwargs = {}
if "expected_failed_checks" in inspect.signature(parametrize_with_checks).parameters:
    _kwargs["expected_failed_checks"] = _expected_failures


# scikit-learn's checks fit random data: the GCV guard's fallback warning is a side effect
@pytest.mark.filterwarnings("ignore::fastsd.exceptions.TuningWarning")
@parametrize_with_checks(ESTIMATORS, **_kwargs)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _data(n, d, seed, targets=None, offset=2.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + rng.normal(size=d)
    shape = (d,) if targets is None else (d, targets)
    beta = rng.normal(size=shape)
    noise = rng.normal(size=(n,) if targets is None else (n, targets))
    return X, X @ beta + offset + noise


def _centered_self_distill(X, y, lam, xi, w=None):
    """Independent route: weighted centering by hand, then fastsd.self_distill."""
    w = np.ones(X.shape[0]) if w is None else np.asarray(w, float)
    xm = w @ X / w.sum()
    ym = w @ y / w.sum()
    sw = np.sqrt(w)
    theta = fastsd.self_distill((X - xm) * sw[:, None], (y - ym) * sw, lam, xi)
    return theta, ym - xm @ theta


# ---------------------------------------------------------------------------
# SelfDistilledRidge
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(40, 6), (9, 15)])
@pytest.mark.parametrize("xi", [(), (0.7,), (1.4, -0.6), (0.3, 2.0, 0.9)])
def test_matches_self_distill_without_intercept(shape, xi):
    X, y = _data(*shape, seed=1)
    est = SelfDistilledRidge(lam=0.8, xi=xi, fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(
        est.coef_, fastsd.self_distill(X, y, 0.8, xi), rtol=1e-10, atol=1e-12
    )
    assert est.intercept_ == 0.0


@pytest.mark.parametrize("shape", [(40, 6), (9, 15)])
@pytest.mark.parametrize("xi", [(), (0.7,), (1.4, -0.6)])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_self_distill_with_intercept(shape, xi, weighted):
    X, y = _data(*shape, seed=2)
    w = np.random.default_rng(3).uniform(0.2, 3.0, size=shape[0]) if weighted else None
    est = SelfDistilledRidge(lam=1.3, xi=xi).fit(X, y, sample_weight=w)
    theta, b = _centered_self_distill(X, y, 1.3, xi, w)
    np.testing.assert_allclose(est.coef_, theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(est.intercept_, b, rtol=1e-10)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(50, 7), (8, 20)])
def test_ridge_matches_sklearn(fit_intercept, weighted, shape):
    X, y = _data(*shape, seed=4, targets=2)
    w = np.random.default_rng(5).uniform(0.5, 2.0, size=shape[0]) if weighted else None
    ours = SelfDistilledRidge(lam=0.9, fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    ref = Ridge(alpha=0.9, fit_intercept=fit_intercept, solver="svd").fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-9, atol=1e-10)


def test_multi_output_equals_per_column_fits():
    X, Y = _data(30, 5, seed=6, targets=3)
    est = SelfDistilledRidge(lam=0.5, xi=(0.8, 1.7)).fit(X, Y)
    assert est.coef_.shape == (3, 5) and est.intercept_.shape == (3,)
    for t in range(3):
        one = SelfDistilledRidge(lam=0.5, xi=(0.8, 1.7)).fit(X, Y[:, t])
        np.testing.assert_allclose(est.coef_[t], one.coef_, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(est.intercept_[t], one.intercept_, rtol=1e-12)
    assert est.predict(X).shape == (30, 3)


def test_shapes_single_target():
    X, y = _data(20, 4, seed=7)
    est = SelfDistilledRidge(xi=[0.5]).fit(X, y)
    assert est.coef_.shape == (4,)
    assert np.ndim(est.intercept_) == 0
    assert est.n_features_in_ == 4
    column = SelfDistilledRidge(xi=[0.5]).fit(X, y[:, None])
    assert column.coef_.shape == (1, 4) and column.intercept_.shape == (1,)
    from sklearn.metrics import r2_score

    assert est.score(X, y) == pytest.approx(r2_score(y, est.predict(X)))


def test_float32():
    X, y = _data(60, 6, seed=8)
    est64 = SelfDistilledRidge(lam=0.4, xi=(0.6, 1.2)).fit(X, y)
    est32 = SelfDistilledRidge(lam=0.4, xi=(0.6, 1.2)).fit(
        X.astype(np.float32), y.astype(np.float32)
    )
    assert est32.coef_.dtype == np.float32
    assert est32.predict(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(est32.coef_, est64.coef_, rtol=1e-4, atol=1e-5)
    cv64 = SelfDistilledRidgeCV(tuning="loo").fit(X, y)
    cv32 = SelfDistilledRidgeCV(tuning="loo").fit(X.astype(np.float32), y.astype(np.float32))
    assert cv32.coef_.dtype == np.float32
    np.testing.assert_allclose(cv32.cv_results_["risk"], cv64.cv_results_["risk"], rtol=1e-4)
    np.testing.assert_allclose(
        cv32.predict(X.astype(np.float32)), cv64.predict(X), rtol=1e-3, atol=1e-3
    )


@pytest.mark.parametrize("cls", [SelfDistilledRidge, SelfDistilledRidgeCV])
def test_zero_weights_equal_removal(cls):
    X, y = _data(30, 5, seed=9)
    w = np.ones(30)
    w[[2, 7, 19]] = 0.0
    keep = w > 0
    params = {"xi": (0.5, 1.5)} if cls is SelfDistilledRidge else {"tuning": "loo"}
    a = cls(**params).fit(X, y, sample_weight=w)
    b = cls(**params).fit(X[keep], y[keep])
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=1e-9)


# ---------------------------------------------------------------------------
# SelfDistilledRidgeCV
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("tuning", ["safe", "gcv", "loo", "holdout"])
@pytest.mark.parametrize("targets", [None, 2])
def test_cv_attributes_and_refit_invariant(tuning, targets):
    X, y = _data(45, 6, seed=10, targets=targets)
    lams = np.logspace(-2, 2, 5)
    K = 1 if tuning == "gcv" else 3
    cv = SelfDistilledRidgeCV(lams=lams, max_steps=K, tuning=tuning, random_state=0).fit(X, y)
    res = cv.cv_results_
    assert res["risk"].shape == (5, K + 1) and res["xi"].shape == (5, K + 1, K)
    assert res["valid"].shape == (5, K + 1)
    np.testing.assert_array_equal(res["lams"], lams)
    np.testing.assert_array_equal(res["k"], np.arange(K + 1))
    assert cv.lam_ in lams and 0 <= cv.k_ <= K and cv.xi_.shape == (cv.k_,)
    l_best = int(np.flatnonzero(lams == cv.lam_)[0])
    assert res["valid"][l_best, cv.k_]
    if tuning == "safe":
        assert cv.best_score_ == -res["nested_risk"][l_best, cv.k_]
        assert np.isfinite(cv.z_score_)
    else:
        assert cv.best_score_ == -res["risk"][l_best, cv.k_]
        assert np.all(res["risk"][res["valid"]] >= -cv.best_score_)
    np.testing.assert_array_equal(res["xi"][l_best, cv.k_, : cv.k_], cv.xi_)
    # the tuned model is SelfDistilledRidge(lam_, xi_) on all the data
    refit = SelfDistilledRidge(lam=cv.lam_, xi=cv.xi_).fit(X, y)
    np.testing.assert_allclose(cv.coef_, refit.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cv.intercept_, refit.intercept_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("tuning", ["gcv", "loo", "holdout"])
def test_cv_risk_non_increasing_in_k(tuning):
    X, y = _data(60, 8, seed=11)
    cv = SelfDistilledRidgeCV(
        lams=[0.1, 1.0, 10.0], max_steps=1 if tuning == "gcv" else 4, tuning=tuning, random_state=1
    ).fit(X, y)
    risk = cv.cv_results_["risk"]
    assert np.all(np.diff(risk, axis=1) <= 1e-9 * risk[:, :1])


def test_cv_multi_output_shares_the_tuning():
    X, Y = _data(40, 5, seed=12, targets=2)
    cv = SelfDistilledRidgeCV(tuning="loo", max_steps=2).fit(X, Y)
    for t in range(2):
        one = SelfDistilledRidge(lam=cv.lam_, xi=cv.xi_).fit(X, Y[:, t])
        np.testing.assert_allclose(cv.coef_[t], one.coef_, rtol=1e-10, atol=1e-12)
    # ridge risks of several targets are the mean of the single-target risks
    r0 = np.mean(
        [
            SelfDistilledRidgeCV(tuning="loo", max_steps=0)
            .fit(X, Y[:, t])
            .cv_results_["risk"][:, 0]
            for t in range(2)
        ],
        axis=0,
    )
    both = SelfDistilledRidgeCV(tuning="loo", max_steps=0).fit(X, Y).cv_results_["risk"][:, 0]
    np.testing.assert_allclose(both, r0, rtol=1e-12)


def test_cv_default_grid():
    np.testing.assert_allclose(DEFAULT_LAMS, np.logspace(-3, 3, 13))
    assert SelfDistilledRidgeCV().get_params()["lams"] == DEFAULT_LAMS


def test_cv_ridge_only_picks_ridge_cv_alpha():
    from sklearn.linear_model import RidgeCV

    X, y = _data(50, 6, seed=13)
    lams = np.logspace(-3, 3, 13)
    ours = SelfDistilledRidgeCV(lams=lams, max_steps=0, tuning="loo").fit(X, y)
    ref = RidgeCV(alphas=lams).fit(X, y)
    assert ours.lam_ == ref.alpha_ and ours.k_ == 0
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-9)


def test_holdout_is_reproducible():
    X, y = _data(50, 6, seed=14)
    a = SelfDistilledRidgeCV(tuning="holdout", random_state=3).fit(X, y)
    b = SelfDistilledRidgeCV(tuning="holdout", random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.cv_results_["risk"], b.cv_results_["risk"])


# ---------------------------------------------------------------------------
# parameter errors: raised at fit, naming the parameter
# ---------------------------------------------------------------------------

BAD_PARAMS = [
    (SelfDistilledRidge, {"lam": -1.0}, ValueError, "lam"),
    (SelfDistilledRidge, {"lam": np.inf}, ValueError, "lam"),
    (SelfDistilledRidge, {"lam": "1"}, TypeError, "lam"),
    (SelfDistilledRidge, {"lam": [1.0]}, TypeError, "lam"),
    (SelfDistilledRidge, {"xi": 0.5}, TypeError, "xi"),
    (SelfDistilledRidge, {"xi": "ab"}, TypeError, "xi"),
    (SelfDistilledRidge, {"xi": [[0.5]]}, ValueError, "xi"),
    (SelfDistilledRidge, {"xi": [np.nan]}, ValueError, "xi"),
    (SelfDistilledRidge, {"xi": ["a"]}, TypeError, "xi"),
    (SelfDistilledRidge, {"fit_intercept": "yes"}, TypeError, "fit_intercept"),
    (SelfDistilledRidgeCV, {"lams": [1.0, -0.5]}, ValueError, "lams"),
    (SelfDistilledRidgeCV, {"lams": []}, ValueError, "lams"),
    (SelfDistilledRidgeCV, {"lams": [[1.0]]}, ValueError, "lams"),
    (SelfDistilledRidgeCV, {"lams": "big"}, TypeError, "lams"),
    (SelfDistilledRidgeCV, {"max_steps": -1}, ValueError, "max_steps"),
    (SelfDistilledRidgeCV, {"max_steps": 1.5}, TypeError, "max_steps"),
    (SelfDistilledRidgeCV, {"max_steps": 2.0}, TypeError, "max_steps"),
    (SelfDistilledRidgeCV, {"max_steps": "2"}, TypeError, "max_steps"),
    (SelfDistilledRidgeCV, {"tuning": "cv"}, ValueError, "tuning"),
    (SelfDistilledRidgeCV, {"tuning": None}, ValueError, "tuning"),
    (SelfDistilledRidgeCV, {"tuning": "gcv", "max_steps": 2}, ValueError, "max_steps"),
    (SelfDistilledRidgeCV, {"fit_intercept": 1}, TypeError, "fit_intercept"),
    (SelfDistilledRidgeCV, {"tuning": "holdout", "val_fraction": 1.0}, ValueError, "val_fraction"),
    (SelfDistilledRidgeCV, {"tuning": "holdout", "val_fraction": "x"}, TypeError, "val_fraction"),
]


@pytest.mark.parametrize("cls, params, exc, name", BAD_PARAMS)
def test_bad_parameters_raise_at_fit(cls, params, exc, name):
    X, y = _data(20, 3, seed=15)
    est = cls(**params)  # construction never validates
    with pytest.raises(exc, match=name):
        est.fit(X, y)


@pytest.mark.parametrize(
    "params, exc, match",
    [
        ({"lam": -1.0}, ValueError, "'lam' parameter of loo_predictions"),
        ({"xi": 0.5}, TypeError, "'xi' parameter"),
        ({"xi": [np.inf]}, ValueError, "xi contains NaN"),
        ({"fit_intercept": 1}, TypeError, "'fit_intercept' parameter"),
    ],
)
def test_loo_predictions_validates_its_arguments(params, exc, match):
    X, y = _data(20, 3, seed=15)
    kwargs = {"lam": 1.0, "xi": [0.5]} | params
    with pytest.raises(exc, match=match):
        fastsd.estimators.loo_predictions(X, y, **kwargs)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fastsd.estimators.loo_predictions(X, y, lam=1.0, xi=[0.5])


@pytest.mark.parametrize("tuning", ["safe", "loo", "holdout"])
def test_huge_max_steps_is_refused_before_allocating(tuning):
    """max_steps=10**9 used to try to allocate 7.45 GiB: now one line naming the parameter
    and the limit, before anything of that size exists."""
    import tracemalloc

    X, y = _data(100, 8, seed=3)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"max_steps=1000000000.*GiB limit") as err:
            SelfDistilledRidgeCV(max_steps=10**9, tuning=tuning).fit(X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(err.value) and peak < 50 << 20
    SelfDistilledRidgeCV(max_steps=3, tuning=tuning, random_state=0).fit(X, y)  # normal sizes pass


def test_negative_sample_weight():
    X, y = _data(20, 3, seed=16)
    w = np.ones(20)
    w[3] = -1.0
    with pytest.raises(ValueError, match="sample_weight"):
        SelfDistilledRidge().fit(X, y, sample_weight=w)


def test_undefined_risk_everywhere_raises():
    X, y = _data(6, 10, seed=17)  # n < d: leverage 1 at lam = 0
    with pytest.raises(ValueError, match="lams"):
        SelfDistilledRidgeCV(lams=[0.0], tuning="loo").fit(X, y)
    ok = SelfDistilledRidgeCV(lams=[0.0, 1.0], tuning="loo").fit(X, y)
    assert ok.lam_ == 1.0 and np.isinf(ok.cv_results_["risk"][0]).all()


def test_clone_keeps_parameters():
    est = SelfDistilledRidgeCV(lams=(0.1, 1.0), max_steps=4, tuning="loo")
    assert clone(est).get_params() == est.get_params()


# ---------------------------------------------------------------------------
# tuning comparison table
# ---------------------------------------------------------------------------


def _splits(n_splits):
    out = []
    for seed in range(n_splits):
        X, y = _data(120, 8, seed=100 + seed)
        out.append((X[:60], y[:60], X[60:80], y[60:80], X[80:], y[80:]))
    return out


def test_tuning_table():
    res = tuning_table(_splits(3), lams=np.logspace(-2, 2, 5), max_steps=3)
    assert res["methods"] == ["holdout", "gcv", "loo"]
    assert res["columns"] == ["ridge", "1-step", "2-step", "best k<=3"]
    assert res["mse"].shape == (3, 3, 4)
    # gcv is refused for k >= 2: its 2-step column is NaN, its "best k" is k <= 1
    refused = np.zeros((3, 4), bool)
    refused[1, 2] = True
    assert np.all(np.isnan(res["mse"][:, refused]))
    assert np.all(np.isfinite(res["mse"][:, ~refused])) and np.all(res["mse"][:, ~refused] > 0)
    assert np.all(res["k"][:, 1, 3] <= 1)
    np.testing.assert_allclose(res["mean"], res["mse"].mean(axis=0))
    np.testing.assert_allclose(res["std"], res["mse"].std(axis=0, ddof=1))
    assert np.all(res["k"][..., 0] == 0) and np.all(res["k"][..., 1] == 1)
    # the holdout ridge column is the paper's rule: best validation lambda, fit on train
    X_tr, y_tr, X_val, y_val, X_te, y_te = _splits(1)[0]
    lam = res["lam"][0, 0, 0]
    fit = SelfDistilledRidge(lam=lam).fit(X_tr, y_tr)
    val = [
        np.mean((SelfDistilledRidge(lam=v).fit(X_tr, y_tr).predict(X_val) - y_val) ** 2)
        for v in np.logspace(-2, 2, 5)
    ]
    assert lam == np.logspace(-2, 2, 5)[int(np.argmin(val))]
    np.testing.assert_allclose(res["mse"][0, 0, 0], np.mean((fit.predict(X_te) - y_te) ** 2))
    text = format_tuning_table(res, title="toy")
    assert text.splitlines()[0].startswith("| toy | ridge")
    assert text.count("±") == 12


def test_tuning_table_bad_steps():
    with pytest.raises(ValueError, match="steps"):
        tuning_table(_splits(1), max_steps=1, steps=(0, 2))


# ---------------------------------------------------------------------------
# package-level lazy export (fastsd.SelfDistilledRidge)
# ---------------------------------------------------------------------------


def _exported():
    try:
        return fastsd.SelfDistilledRidge is SelfDistilledRidge
    except AttributeError:
        return False


@pytest.mark.skipif(not _exported(), reason="fastsd/__init__ does not export the estimators yet")
def test_lazy_package_export():
    assert fastsd.SelfDistilledRidgeCV is SelfDistilledRidgeCV
