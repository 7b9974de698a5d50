"""scikit-learn estimators: SelfDistilledRidgeCV against sklearn's RidgeCV (same lambdas)."""

import numpy as np

import fastsd

ESTIMATORS = [
    "RidgeCV",
    "fastsd-loo-K0",
    "fastsd-safe-K2",
    # noiseless y: SD passes the safe rule's screen, so its exact nested LOO check runs
    "fastsd-safe-K2-verified",
    "fastsd-safe-K5",
    "fastsd-loo-K5",
    "fastsd-gcv-K1",
    "fastsd-holdout-K5",
]
ESTIMATOR_SIZES = [(500, 20), (2000, 50)]


class TuneRidgeAndSD:
    """Fit + tune on one dataset: ``RidgeCV`` (efficient LOO) vs ``SelfDistilledRidgeCV``."""

    params = [ESTIMATORS, ESTIMATOR_SIZES]
    param_names = ["estimator", "n_d"]

    def setup(self, estimator, n_d):
        try:
            from sklearn.linear_model import RidgeCV
        except ImportError:
            raise NotImplementedError("scikit-learn is not installed") from None
        try:
            cv_class = fastsd.SelfDistilledRidgeCV
        except AttributeError:
            raise NotImplementedError(
                "fastsd.SelfDistilledRidgeCV is not in this version"
            ) from None
        n, d = n_d
        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((n, d))
        noise = 0.0 if estimator.endswith("-verified") else 1.0
        self.y = self.X @ rng.standard_normal(d) + noise * rng.standard_normal(n)
        lams = np.logspace(-3, 3, 13)
        if estimator == "RidgeCV":
            self.model = RidgeCV(alphas=lams)
        else:
            _, tuning, steps = estimator.split("-")[:3]
            self.model = cv_class(
                lams=tuple(lams), max_steps=int(steps[1:]), tuning=tuning, random_state=0
            )
        self.time_fit(estimator, n_d)  # warm-up (JIT, imports)

    def time_fit(self, estimator, n_d):
        self.model.fit(self.X, self.y)
