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
from ..math.filters import bias_factor, risk_term, sd_step
from .spectral import chunk_bounds, factors, risk_weights


@jit()
def step_rows(s2, lam_row, r, q, inv, rows):
    """Factors (r, q, inv rows, see ``factors``) of each penalty lam_row[i];
    rows[i] is the row holding lam_i's factors (a repeated penalty reuses them)."""
    for i in range(lam_row.shape[0]):
        if i > 0 and lam_row[i] == lam_row[i - 1]:
            rows[i] = rows[i - 1]
        else:
            factors(s2, lam_row[i], r[i], q[i], inv[i])
            rows[i] = i


@jit(parallel=True)
def sweep_risk(s2, t2, noise_var, n, lams, schedules, out, chunks):
    """Excess risk of every schedule after k = 0..K steps.

    Parameters
    ----------
    s2, t2 : float64[B, p]
        Eigenvalues of X^T X and squared projections (V^T theta*)^2.
    noise_var : float64[B]
    n : int
    lams : float64[L, S]
        S = 1: one penalty per lambda; S = K + 1: the penalty schedule
        lam_0..lam_K (step i uses the factors of lam_{i-1}, the risk after
        k steps those of lam_k; see :mod:`fastsd.math.filters`).
    schedules : float64[G, K]
        Row g holds xi_1..xi_K of schedule g (its prefix of length k is used
        for k steps).
    out : float64[B, L, G, K + 1]
    chunks : int
        Number of parallel work units.
    """
    B, p = s2.shape
    L, S = lams.shape
    G, K = schedules.shape
    for c in prange(chunks):
        start, stop = chunk_bounds(B * L, chunks, c)
        r = np.empty((S, p))
        q = np.empty((S, p))
        inv = np.empty((S, p))
        bias_w = np.empty((S, p))
        noise_w = np.empty((S, p))
        rows = np.empty(S, dtype=np.int64)
        u = np.empty(p)
        for bl in range(start, stop):
            b = bl // L
            l = bl - b * L
            step_rows(s2[b], lams[l], r, q, inv, rows)
            for i in range(S):
                if rows[i] == i:
                    risk_weights(s2[b], t2[b], noise_var[b], n, inv[i], bias_w[i], noise_w[i])
            for g in range(G):
                for j in range(p):
                    u[j] = 0.0
                ri, qi, bwi, nwi = r[0], q[0], bias_w[0], noise_w[0]
                cur = 0
                for k in range(K + 1):
                    # risk of u_k (factors of lam_k); then u_{k+1} = xi_{k+1} (q_k + r_k u_k)
                    i = rows[min(k, S - 1)]
                    if i != cur:  # new views only where the penalty changes
                        ri, qi, bwi, nwi = r[i], q[i], bias_w[i], noise_w[i]
                        cur = i
                    xi = schedules[g, k] if k < K else 0.0
                    acc = 0.0
                    for j in range(p):
                        acc += risk_term(bwi[j], nwi[j], ri[j], qi[j], u[j])
                        u[j] = sd_step(u[j], ri[j], qi[j], xi)
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
    lams : float64[L, S]
        As in :func:`sweep_risk` (S = 1 or K + 1).
    schedules : float64[G, K]
    out : float64[B, L, G, K + 1]
    chunks : int
    """
    B, p = s2.shape
    m = R.shape[1]
    L, S = lams.shape
    G, K = schedules.shape
    for c in prange(chunks):
        start, stop = chunk_bounds(B * L, chunks, c)
        r = np.empty((S, p))
        q = np.empty((S, p))
        inv = np.empty((S, p))
        rows = np.empty(S, dtype=np.int64)
        u = np.empty((G, p))
        coef = np.empty((G, p))
        pred = np.empty((G, m))
        for bl in range(start, stop):
            b = bl // L
            l = bl - b * L
            step_rows(s2[b], lams[l], r, q, inv, rows)
            Rt = R[b].T
            u[:, :] = 0.0
            for k in range(K + 1):
                prev = rows[min(max(k - 1, 0), S - 1)]
                cur = rows[min(k, S - 1)]
                for g in range(G):
                    if k > 0:
                        xi = schedules[g, k - 1]
                        for j in range(p):
                            u[g, j] = sd_step(u[g, j], r[prev, j], q[prev, j], xi)
                    for j in range(p):
                        coef[g, j] = (1.0 - u[g, j]) * inv[cur, j] * z[b, j]
                # all schedules at once: one small matrix product (BLAS)
                np.dot(coef, Rt, pred)
                for g in range(G):
                    acc = resid2[b]
                    for i in range(m):
                        e = c_proj[b, i] - pred[g, i]
                        acc += e * e
                    out[b, l, g, k] = acc / n_eval


@jit(parallel=True)
def sweep_risk_population(s2, t, S, m, kappa, noise_diag, lams, schedules, out, chunks):
    """Population risk of every schedule after k = 0..K steps (reference
    ``sweep_risk_population``): with beta = (q_k + r_k u_k) t and c = a_k (1 - u_k),
    beta^T S beta + 2 beta^T m + kappa + sum_j c_j^2 noise_diag_j, O(p^2) per cell.

    Parameters
    ----------
    s2, t : float64[B, p]
    S : float64[B, p, p]
    m, noise_diag : float64[B, p]
        V^T Sigma theta_perp and sigma^2 s^2 diag(S).
    kappa : float64[B]
    lams : float64[L, S_rows]
        As in :func:`sweep_risk`.
    schedules : float64[G, K]
    out : float64[B, L, G, K + 1]
    chunks : int
    """
    B, p = s2.shape
    L, n_rows = lams.shape
    G, K = schedules.shape
    for c in prange(chunks):
        start, stop = chunk_bounds(B * L, chunks, c)
        r = np.empty((n_rows, p))
        q = np.empty((n_rows, p))
        inv = np.empty((n_rows, p))
        rows = np.empty(n_rows, dtype=np.int64)
        u = np.empty(p)
        beta = np.empty(p)
        for bl in range(start, stop):
            b = bl // L
            l = bl - b * L
            step_rows(s2[b], lams[l], r, q, inv, rows)
            Sb = S[b]
            for g in range(G):
                for j in range(p):
                    u[j] = 0.0
                for k in range(K + 1):
                    i = rows[min(k, n_rows - 1)]
                    acc = kappa[b]
                    for j in range(p):
                        beta[j] = bias_factor(u[j], r[i, j], q[i, j]) * t[b, j]
                        cj = (1.0 - u[j]) * inv[i, j]
                        acc += 2.0 * beta[j] * m[b, j] + cj * cj * noise_diag[b, j]
                    for a in range(p):
                        row_acc = 0.0
                        for j in range(p):
                            row_acc += Sb[a, j] * beta[j]
                        acc += beta[a] * row_acc
                    out[b, l, g, k] = acc
                    if k < K:
                        xi = schedules[g, k]
                        for j in range(p):
                            u[j] = sd_step(u[j], r[i, j], q[i, j], xi)
