"""SelfDistilledKernelRidge / SelfDistilledKernelRidgeCV: scikit-learn checks and KernelRidge."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.kernel_ridge import KernelRidge  # noqa: E402
from sklearn.metrics.pairwise import rbf_kernel  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastsd  # noqa: E402
from fastsd.estimators import SelfDistilledKernelRidge, SelfDistilledKernelRidgeCV  # noqa: E402


@parametrize_with_checks(
    [
        SelfDistilledKernelRidge(),
        SelfDistilledKernelRidgeCV(max_steps=1, random_state=0),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _data(seed=0, n=40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = np.sin(2 * X[:, 0]) + 0.2 * rng.normal(size=n)
    return X, y, rng.normal(size=(15, 3))


@pytest.mark.parametrize(
    "kernel,params",
    [
        ("rbf", {"gamma": 0.5}),
        ("laplacian", {"gamma": 0.2}),
        ("polynomial", {"degree": 2, "coef0": 0.5, "gamma": 0.3}),
        ("linear", {}),
    ],
)
@pytest.mark.parametrize("lam", [1e-3, 0.1, 10.0])
def test_k0_equals_kernel_ridge(kernel, params, lam):
    X, y, Xt = _data()
    ours = SelfDistilledKernelRidge(lam=lam, kernel=kernel, **params).fit(X, y)
    ref = KernelRidge(alpha=lam, kernel=kernel, **params).fit(X, y)
    scale = np.abs(ref.predict(Xt)).max()
    assert np.max(np.abs(ours.predict(Xt) - ref.predict(Xt))) <= 1e-10 * scale


def test_precomputed_and_multioutput():
    X, y, Xt = _data(1)
    K, Kt = rbf_kernel(X, X, gamma=0.5), rbf_kernel(Xt, X, gamma=0.5)
    a = SelfDistilledKernelRidge(lam=0.2, xi=[0.7], kernel="precomputed").fit(K, y)
    b = SelfDistilledKernelRidge(lam=0.2, xi=[0.7], gamma=0.5).fit(X, y)
    np.testing.assert_allclose(a.predict(Kt), b.predict(Xt), rtol=1e-12)
    np.testing.assert_allclose(
        b.dual_coef_, fastsd.self_distill(fastsd.decompose_kernel(K), y, 0.2, [0.7]), rtol=1e-10
    )
    Y = np.column_stack([y, -2 * y])
    m = SelfDistilledKernelRidge(lam=0.2, xi=[0.7], gamma=0.5).fit(X, Y)
    np.testing.assert_allclose(
        m.predict(Xt), np.column_stack([b.predict(Xt), -2 * b.predict(Xt)]), rtol=1e-10
    )


def test_cv_picks_the_validation_optimum():
    X, y, _ = _data(2, n=60)
    cv = SelfDistilledKernelRidgeCV(
        lams=[1e-2, 1e-1, 1.0], max_steps=2, gamma=0.5, random_state=0
    ).fit(X, y)
    res = cv.cv_results_
    risk = np.where(res["valid"], res["risk"], np.inf)
    assert cv.best_score_ == -risk.min()
    assert cv.xi_.shape == (cv.k_,)
    ref = SelfDistilledKernelRidge(lam=cv.lam_, xi=cv.xi_, gamma=0.5).fit(X, y)
    np.testing.assert_allclose(cv.predict(X), ref.predict(X), rtol=1e-10)
    # the k = 0 column is kernel ridge tuned on the holdout set: SD can only match or beat it
    assert risk.min() <= risk[:, 0].min()


def test_bad_parameters_are_named():
    X, y, _ = _data()
    with pytest.raises(ValueError, match=r"'lam' parameter .* range \[0.0, inf\)"):
        SelfDistilledKernelRidge(lam=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="'lam' parameter"):
        SelfDistilledKernelRidge(lam=np.inf).fit(X, y)
    with pytest.raises(TypeError, match="'kernel' parameter .* callable"):
        SelfDistilledKernelRidge(kernel=3).fit(X, y)
    with pytest.raises(ValueError, match="square kernel matrix"):
        SelfDistilledKernelRidge(kernel="precomputed").fit(X, y)
    with pytest.raises(ValueError, match=r"'val_fraction' parameter .* range \(0.0, 1.0\)"):
        SelfDistilledKernelRidgeCV(val_fraction=1.5).fit(X, y)
    with pytest.raises(ValueError, match="lams must all be >= 0"):
        SelfDistilledKernelRidgeCV(lams=[1.0, -1.0]).fit(X, y)
    with pytest.raises(TypeError, match="'max_steps' parameter"):
        SelfDistilledKernelRidgeCV(max_steps=1.5).fit(X, y)


def test_huge_max_steps_is_refused_before_allocating():
    """SelfDistilledKernelRidgeCV(max_steps=10**9) used to try to allocate 1.5 TiB."""
    X, y, _ = _data()
    with pytest.raises(ValueError, match=r"max_steps=1000000000.*GiB limit"):
        SelfDistilledKernelRidgeCV(max_steps=10**9).fit(X, y)


@pytest.mark.parametrize(
    "cls", [fastsd.SelfDistilledKernelRidge, fastsd.SelfDistilledKernelRidgeCV]
)
def test_misspelled_kernel_parameter_is_an_error(cls):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    with pytest.raises(ValueError, match="gama.*gamma"):
        cls(kernel="rbf", kernel_params={"gama": 5.0}).fit(X, y)
