"""
SelfDistilledRidgeCV against scikit-learn's RidgeCV
===================================================

:class:`fastsd.SelfDistilledRidgeCV` tunes λ, the number of steps k ≤ ``max_steps`` and the
schedule ξ from one decomposition (the default ``tuning="safe"`` rule is described in the
user guide's Tuning page). With ``max_steps=0`` it is ridge tuned by exact LOO — the
same model as :class:`sklearn.linear_model.RidgeCV` with the same penalties, which this
example checks before comparing test errors and fit times.

Data: the bundled Air Quality dataset, 20 random splits of 500 training rows (the rest
split between an unused validation part and the test part).
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import RidgeCV

from fastsd import SelfDistilledRidgeCV
from fastsd.datasets import load_split

lams = np.logspace(-3, 3, 13)
models = {
    "RidgeCV (scikit-learn)": lambda: RidgeCV(alphas=lams),
    "SelfDistilledRidgeCV, K = 0": lambda: SelfDistilledRidgeCV(lams=lams, max_steps=0),
    "SelfDistilledRidgeCV, K = 2": lambda: SelfDistilledRidgeCV(lams=lams, max_steps=2),
}
n_splits = 20
mse = {name: [] for name in models}
seconds = {name: [] for name in models}
for seed in range(n_splits):
    sp = load_split("air_quality", seed, val_fraction=0.3, test_fraction=0.2)
    X, y = sp.X_train[:500], sp.y_train[:500]
    fitted = {}
    for name, make in models.items():
        start = time.perf_counter()
        fitted[name] = make().fit(X, y)
        seconds[name].append(time.perf_counter() - start)
        mse[name].append(np.mean((fitted[name].predict(sp.X_test) - sp.y_test) ** 2))
    ridge, k0 = fitted["RidgeCV (scikit-learn)"], fitted["SelfDistilledRidgeCV, K = 0"]
    assert ridge.alpha_ == k0.lam_ and np.allclose(ridge.coef_, k0.coef_, rtol=1e-8)

print("K = 0 matches RidgeCV (same λ, same coefficients) on every split")
for name in models:
    print(
        f"{name:28s} test MSE {np.mean(mse[name]):.4f} ± {np.std(mse[name], ddof=1):.4f}, "
        f"fit {1e3 * np.median(seconds[name]):.2f} ms (median)"
    )

# %%
# Each point is one split: test MSE of the tuned SD model against RidgeCV's.
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
base = np.array(mse["RidgeCV (scikit-learn)"])
for name, marker in (("SelfDistilledRidgeCV, K = 0", "x"), ("SelfDistilledRidgeCV, K = 2", "o")):
    ax0.scatter(base, mse[name], marker=marker, label=name)
lim = [base.min() * 0.97, base.max() * 1.03]
ax0.plot(lim, lim, "k:", lw=1)
ax0.set_xlabel("RidgeCV test MSE")
ax0.set_ylabel("SelfDistilledRidgeCV test MSE")
ax0.set_title(f"{n_splits} splits of Air Quality, 500 training rows each")
ax0.legend()
names = list(models)
ax1.barh(names, [1e3 * np.median(seconds[n]) for n in names])
ax1.set_xlabel("fit time, ms (median over splits)")
ax1.set_title("fit time")
fig.tight_layout()
plt.show()
