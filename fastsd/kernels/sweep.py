"""Fixed-schedule sweeps: every (problem, lambda, schedule, k) in one pass.

Mirrors :func:`fastsd.reference.sweep_risk` and
:func:`fastsd.reference.sweep_mse`. The parallel loop runs over chunks of the
flattened (problem, lambda) pairs, each chunk with its own scratch vectors;
the innermost loop runs over eigen-directions and vectorizes.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from ..filters import risk_term, sd_step
from .spectral import chunk_bounds, factors, risk_weights


@jit(parallel=True)
def sweep_risk(s2, t2, noise_var, n, lams, schedules, out, chunks):
    """Excess risk of every schedule after k = 0..K steps.

    Parameters
    ----------
    s2, t2 : float64[B, p]
        Eigenvalues of X^T X and squared projections (V^T theta*)^2.
    noise_var : float64[B]
    n : int
    lams : float64[L]
    schedules : float64[G, K]
        Row g holds xi_1..xi_K of schedule g (its prefix of length k is used
        for k steps).
    out : float64[B, L, G, K + 1]
    chunks : int
        Number of parallel work units.
    """
    B, p = s2.shape
    L = lams.shape[0]
    G, K = schedules.shape
    for c in prange(chunks):
        start, stop = chunk_bounds(B * L, chunks, c)
        r = np.empty(p)
        q = np.empty(p)
        inv = np.empty(p)
        bias_w = np.empty(p)
        noise_w = np.empty(p)
        u = np.empty(p)
        for bl in range(start, stop):
            b = bl // L
            l = bl - b * L
            factors(s2[b], lams[l], r, q, inv)
            risk_weights(s2[b], t2[b], noise_var[b], n, inv, bias_w, noise_w)
            for g in range(G):
                for j in range(p):
                    u[j] = 0.0
                for k in range(K + 1):
                    # risk of u_k; then u_{k+1} = xi_{k+1} (q + r u_k) reuses q + r u_k
                    xi = schedules[g, k] if k < K else 0.0
                    acc = 0.0
                    for j in range(p):
                        acc += risk_term(bias_w[j], noise_w[j], r[j], q[j], u[j])
                        u[j] = sd_step(u[j], r[j], q[j], xi)
                    out[b, l, g, k] = acc


@jit(parallel=True)
def sweep_mse(s2, z, R, c_proj, resid2, n_eval, lams, schedules, out, chunks):
    """Mean squared error on an evaluation set for every schedule and k.

    With W = X_eval V = Q R (thin QR), c = Q^T y_eval and
    resid2 = ||y_eval - Q c||^2, the MSE of the filter phi is
    (resid2 + ||c - R (phi g)||^2) / n_eval, g = z / (s^2 + lam):
    a sum of squares, free of cancellation.

    Parameters
    ----------
    s2, z : float64[B, p]
    R : float64[B, m, p]
    c_proj : float64[B, m]
    resid2 : float64[B]
    n_eval : int
    lams : float64[L]
    schedules : float64[G, K]
    out : float64[B, L, G, K + 1]
    chunks : int
    """
    B, p = s2.shape
    m = R.shape[1]
    L = lams.shape[0]
    G, K = schedules.shape
    for c in prange(chunks):
        start, stop = chunk_bounds(B * L, chunks, c)
        r = np.empty(p)
        q = np.empty(p)
        inv = np.empty(p)
        u = np.empty((G, p))
        coef = np.empty((G, p))
        pred = np.empty((G, m))
        for bl in range(start, stop):
            b = bl // L
            l = bl - b * L
            factors(s2[b], lams[l], r, q, inv)
            Rt = R[b].T
            u[:, :] = 0.0
            for k in range(K + 1):
                for g in range(G):
                    if k > 0:
                        xi = schedules[g, k - 1]
                        for j in range(p):
                            u[g, j] = sd_step(u[g, j], r[j], q[j], xi)
                    for j in range(p):
                        coef[g, j] = (1.0 - u[g, j]) * inv[j] * z[b, j]
                # all schedules at once: one small matrix product (BLAS)
                np.dot(coef, Rt, pred)
                for g in range(G):
                    acc = resid2[b]
                    for i in range(m):
                        e = c_proj[b, i] - pred[g, i]
                        acc += e * e
                    out[b, l, g, k] = acc / n_eval
