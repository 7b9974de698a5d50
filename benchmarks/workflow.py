"""End-to-end paper workflow on synthetic problems (one batch = several seeds).

Per seed: decompose the training design once, pick lambda and the number of
steps k by validation MSE with the validation-optimal xi at every (lambda, k)
(closed form, no xi grid), refit on the training set and report the test MSE,
next to ridge tuned on the same validation set.
"""

import warnings

import numpy as np

import fastsd

from .common import BACKENDS, lam_grid, make_problem

#: (seeds, n, d): a quick one and a paper-sized one.
WORKFLOW_SIZES = [(4, 100, 20), (8, 500, 100)]


def paper_workflow(problem, lams, K, backend):
    """Validation-selected self-distillation vs ridge on every seed of a batch.

    Returns
    -------
    test_mse_sd, test_mse_ridge : ndarray of shape (seeds,)
    """
    p = problem
    S, L = p.X.shape[0], lams.size
    dec = fastsd.decompose(p.X, p.y, backend=backend)
    mse, xi = fastsd.sweep_optimal_validation(dec, None, p.X_val, p.y_val, lams, K, backend=backend)
    # (lambda, k) pairs whose optimal xi is recoverable (row k - 1 not NaN)
    usable = np.ones(mse.shape, dtype=bool)
    usable[..., 1:] = ~np.isnan(xi[..., 0])
    score = np.where(usable, mse, np.inf).reshape(S, -1)
    best_l, best_k = np.unravel_index(np.argmin(score, axis=1), (L, K + 1))
    ridge_l = np.argmin(mse[..., 0], axis=1)

    # one schedule per (seed, lambda): the chosen one at the chosen lambda,
    # left-padded with reset steps (xi = 0 leaves the teacher unchanged)
    schedules = np.zeros((S, L, K))
    for s in range(S):
        k = best_k[s]
        if k:
            schedules[s, best_l[s], K - k :] = xi[s, best_l[s], k - 1, :k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theta_sd = fastsd.self_distill(dec, None, lams, schedules)  # (S, L, d)
        theta_ridge = fastsd.self_distill(dec, None, lams, [])
    seeds = np.arange(S)

    def test_mse(theta):
        resid = np.einsum("smd,sd->sm", p.X_test, theta) - p.y_test
        return np.mean(resid * resid, axis=1)

    return test_mse(theta_sd[seeds, best_l]), test_mse(theta_ridge[seeds, ridge_l])


class PaperWorkflow:
    """decompose + validation-optimal (lambda, k, xi) + test MSE, over a few seeds."""

    params = [BACKENDS, WORKFLOW_SIZES]
    param_names = ["backend", "seeds_n_d"]
    n_lams = 20
    K = 8

    def setup(self, backend, size):
        if not hasattr(fastsd, "sweep_optimal_validation"):
            raise NotImplementedError("fastsd.sweep_optimal_validation is not in this version")
        self.problem = make_problem(size, decay=1.5)
        self.lams = lam_grid(self.n_lams, size[1])
        paper_workflow(self.problem, self.lams, self.K, backend)  # warm-up

    def time_paper_workflow(self, backend, size):
        paper_workflow(self.problem, self.lams, self.K, backend)

    def track_test_mse_ratio(self, backend, size):
        sd, ridge = paper_workflow(self.problem, self.lams, self.K, backend)
        return float(np.mean(sd / ridge))

    track_test_mse_ratio.unit = "SD / ridge test MSE"
