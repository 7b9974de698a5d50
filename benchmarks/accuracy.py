"""Accuracy, tracked commit by commit (``track_*``, unit: relative error).

* :class:`BackendAgreement` -- numba backend vs the NumPy reference backend;
* :class:`SpectralVsRefit` -- the spectral path (``fastsd.self_distill``) vs
  the literal definition (k + 1 ridge refits, ``fastsd.reference.self_distill_refit``);
* :class:`OptimalRiskHighPrecision`, :class:`OptimalXiHighPrecision` -- the
  oracle-optimal k-step risk up to k = d on an ill-conditioned spectrum vs an
  extended-precision (mpmath, 50 digits) solution of the same weighted
  least-squares problem in the monomial basis.

Every value is floored at ``common.ERROR_FLOOR`` (half an ulp); lower is better.
"""

import warnings

import numpy as np

import fastsd

from .common import BACKENDS, SIZES, accepts, lam_grid, make_problem, max_rel_error, xi_grid

try:
    import mpmath
except ImportError:  # pragma: no cover - optional benchmark dependency
    mpmath = None

UNIT = "relative error"

AGREEMENT_OPS = [
    "decompose",
    "sweep_risk",
    "sweep_mse",
    "sweep_optimal",
    "sweep_optimal_validation",
]


class BackendAgreement:
    """Max relative error of ``backend="numba"`` vs ``backend="numpy"``, per operation.

    Sweeps compare every entry of the risk / MSE arrays (L = 20 lambdas,
    K = 8, 16 constant schedules for the fixed-xi sweeps); ``decompose``
    compares the eigenvalues and the reconstructed Gram matrices V diag(s^2) V^T.
    """

    params = [AGREEMENT_OPS, SIZES]
    param_names = ["operation", "B_n_d"]
    n_lams = 20
    K = 8

    def setup(self, op, size):
        if not hasattr(fastsd, op):
            raise NotImplementedError(f"fastsd.{op} is not in this version")
        if op == "decompose" and not accepts(fastsd.decompose, "backend"):
            raise NotImplementedError("decompose has no backend= in this version")
        p = make_problem(size)
        self.problem = p
        self.dec = fastsd.decompose(p.X, p.y)
        self.lams = lam_grid(self.n_lams, size[1])
        self.xis = xi_grid()
        self.run(op, "numba")  # warm-up

    def run(self, op, backend):
        p, K = self.problem, self.K
        if op == "decompose":
            dec = fastsd.decompose(p.X, p.y, backend=backend)
            gram = np.einsum("...dp,...p,...ep->...de", dec.V, dec.s2, dec.V)
            return dec.s2, gram
        if op == "sweep_risk":
            return (
                fastsd.sweep_risk(
                    self.dec, p.theta, p.noise_var, self.lams, self.xis, K, backend=backend
                ),
            )
        if op == "sweep_mse":
            return (
                fastsd.sweep_mse(
                    self.dec, None, p.X_val, p.y_val, self.lams, self.xis, K, backend=backend
                ),
            )
        if op == "sweep_optimal":
            return fastsd.sweep_optimal(
                self.dec, p.theta, p.noise_var, self.lams, K, backend=backend
            )[:1]
        if op == "sweep_optimal_validation":
            return fastsd.sweep_optimal_validation(
                self.dec, None, p.X_val, p.y_val, self.lams, K, backend=backend
            )[:1]
        raise ValueError(op)

    def track_max_rel_error(self, op, size):
        fast, ref = self.run(op, "numba"), self.run(op, "numpy")
        errors = [max_rel_error(fast[0], ref[0])]
        if op == "decompose":  # eigenvectors: sign-free comparison, normwise
            errors.append(max_rel_error(fast[1], ref[1], normwise=True))
        return max(errors)

    track_max_rel_error.unit = UNIT


class SpectralVsRefit:
    """``fastsd.self_distill`` vs ``fastsd.reference.self_distill_refit``.

    A batch of 4 problems (tall and wide), a fixed random schedule of K steps,
    lambda = 0.1 n; normwise relative error of theta_K per problem, maximum
    over problems.
    """

    version = "1"  # stored history: bump only when what is measured changes (common.HISTORY_BENCH)
    processes = 1  # deterministic: a second process would repeat the same value

    params = [[(4, 100, 20), (4, 30, 60)], [1, 4, 16]]
    param_names = ["B_n_d", "K"]

    def setup(self, size, K):
        self.problem = make_problem(size)
        self.lam = 0.1 * size[1]
        self.xi = np.random.default_rng(1).uniform(0.0, 1.5, K)

    def track_max_rel_error(self, size, K):
        p = self.problem
        fast = fastsd.self_distill(p.X, p.y, self.lam, self.xi)
        literal = fastsd.reference.self_distill_refit(p.X, p.y, self.lam, self.xi)
        return max(max_rel_error(f, r, normwise=True) for f, r in zip(fast, literal))

    track_max_rel_error.unit = UNIT


def ill_conditioned_problem(d, cond, seed=0):
    """X (4d, d) with singular values log-spaced so that cond(X^T X) = cond.

    Returns
    -------
    X, theta, noise_var, lams
        ``lams`` (3,): 1e-2, 1 and 1e2 times the geometric mean of the eigenvalues.
    """
    rng = np.random.default_rng(seed)
    n = 4 * d
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.sqrt(n) * np.logspace(0, -0.5 * np.log10(cond), d)
    X = (U * s) @ V.T
    theta = rng.standard_normal(d)
    mid = n * np.sqrt(1.0 / cond)
    return X, theta, 1.0, mid * np.array([1e-2, 1.0, 1e2])


def mp_optimal_risk(s2, t, noise_var, n, lam, K, dps=50):
    """Oracle-optimal excess risk for k = 1..K steps, in mpmath at ``dps`` digits.

    The risk of the filter u (phi = 1 - u) is sum_j bw_j (q_j + r_j u_j)^2 +
    nw_j (1 - u_j)^2, and k steps reach exactly u = q h(r) with deg h <= k - 1.
    Minimizing it is a weighted least-squares fit of u* = (nw - bw r q) / a,
    a = r^2 bw + nw, in the monomial basis q r^m (m < k), solved by
    Householder QR in extended precision; for k >= the number of nodes the
    fit is exact (the oracle risk). Inputs are the float64 spectral quantities,
    taken as exact.

    Returns
    -------
    list of K mpmath.mpf
    """
    with mpmath.workdps(dps):
        lam, var, n = mpmath.mpf(float(lam)), mpmath.mpf(float(noise_var)), mpmath.mpf(int(n))
        nodes = []
        for s2_j, t_j in zip(s2, t):
            if s2_j <= 0:
                continue
            s2_j, t_j = mpmath.mpf(float(s2_j)), mpmath.mpf(float(t_j))
            r, q = s2_j / (s2_j + lam), lam / (s2_j + lam)
            bw = s2_j / n * t_j**2
            nw = s2_j / n * var * s2_j / (s2_j + lam) ** 2
            a = r * r * bw + nw
            nodes.append((r, q, bw, nw, a, (nw - bw * r * q) / a))

        def risk_of(u):
            return mpmath.fsum(
                bw * (q + r * uj) ** 2 + nw * (1 - uj) ** 2
                for (r, q, bw, nw, _, _), uj in zip(nodes, u)
            )

        risks = []
        for k in range(1, K + 1):
            if k >= len(nodes):  # interpolation: u = u* on every node
                risks.append(risk_of([node[5] for node in nodes]))
                continue
            A = mpmath.matrix(len(nodes), k)
            b = mpmath.matrix(len(nodes), 1)
            for j, (r, q, _, _, a, u_star) in enumerate(nodes):
                w = mpmath.sqrt(a)
                for m in range(k):
                    A[j, m] = w * q * r**m
                b[j] = w * u_star
            coef, _ = mpmath.qr_solve(A, b)
            u = [sum(coef[m] * q * r**m for m in range(k)) for (r, q, *_rest) in nodes]
            risks.append(risk_of(u))
        return risks


def _mp_reference(dec, theta, noise_var, lams, K):
    """(L, K) float64 of the mpmath optimal risks, checked at 30 more digits."""
    s2 = np.asarray(dec.s2, dtype=np.float64)
    t = dec.project_theta(theta)
    out = np.empty((lams.size, K))
    for i, lam in enumerate(lams):
        risk = mp_optimal_risk(s2, t, noise_var, dec.n_samples, lam, K, dps=50)
        check = mp_optimal_risk(s2, t, noise_var, dec.n_samples, lam, K, dps=80)
        for k, (a, b) in enumerate(zip(risk, check)):
            if abs(a - b) > 1e-30 * abs(b):
                raise RuntimeError(f"mpmath reference not converged at k={k + 1}")
        out[i] = [float(x) for x in check]
    return out


HIGH_PRECISION_PARAMS = [[6, 12], [1e4, 1e10]]


class OptimalRiskHighPrecision:
    """``fastsd.sweep_optimal`` risks for every k = 1..d vs the mpmath optimum.

    X (4d, d) with cond(X^T X) = ``cond``, three lambdas, K = d: max relative
    error over lambdas and k.
    """

    version = "1"  # stored history: bump only when what is measured changes (common.HISTORY_BENCH)
    processes = 1  # deterministic: a second process would repeat the same value

    params = [BACKENDS] + HIGH_PRECISION_PARAMS
    param_names = ["backend", "d", "cond"]

    def setup(self, backend, d, cond):
        if mpmath is None:
            raise NotImplementedError("mpmath is not installed")
        if not hasattr(fastsd, "sweep_optimal"):
            raise NotImplementedError("fastsd.sweep_optimal is not in this version")
        X, self.theta, self.noise_var, self.lams = ill_conditioned_problem(d, cond)
        self.dec = fastsd.decompose(X)
        self.reference = _mp_reference(self.dec, self.theta, self.noise_var, self.lams, d)
        self.run(backend, d)  # warm-up

    def run(self, backend, d):
        risk, _ = fastsd.sweep_optimal(
            self.dec, self.theta, self.noise_var, self.lams, d, backend=backend
        )
        return risk[:, 1:]

    def track_max_rel_error(self, backend, d, cond):
        return max_rel_error(self.run(backend, d), self.reference)

    track_max_rel_error.unit = UNIT


class OptimalXiHighPrecision:
    """``fastsd.optimal_xi(..., k=d)`` risk vs the mpmath optimum (k = d steps)."""

    version = "1"  # stored history: bump only when what is measured changes (common.HISTORY_BENCH)
    processes = 1  # deterministic: a second process would repeat the same value

    params = HIGH_PRECISION_PARAMS
    param_names = ["d", "cond"]

    def setup(self, d, cond):
        if mpmath is None:
            raise NotImplementedError("mpmath is not installed")
        X, self.theta, self.noise_var, self.lams = ill_conditioned_problem(d, cond)
        self.dec = fastsd.decompose(X)
        self.reference = _mp_reference(self.dec, self.theta, self.noise_var, self.lams, d)

    def track_max_rel_error(self, d, cond):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # IllConditionedXiWarning: xi NaN, risk exact
            _, risk = fastsd.optimal_xi(self.dec, self.theta, self.noise_var, self.lams, d)
        return max_rel_error(risk, self.reference[:, d - 1])

    track_max_rel_error.unit = UNIT
