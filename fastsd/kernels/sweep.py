"""Fixed-schedule sweeps: every (problem, lambda, schedule, k) in one pass.

Mirrors :func:`fastsd.reference.sweep_risk` and
:func:`fastsd.reference.sweep_mse`. Each entry point runs a serial kernel
over fixed chunks of the flattened (problem, lambda) pairs on the kernel
threads (:func:`fastsd._jit.run_chunks`). Within a pair, every schedule's sum
over eigen-directions runs in the order of the directions; the innermost
loop runs over the schedules, whose sums are independent, and vectorizes
without reassociating anything.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit, run_chunks
from ..math.filters import bias_factor, risk_of_factors, sd_step
from .spectral import (
    block_lams,
    eval_mse_lanes,
    factor,
    factors,
    lane_count,
    lane_factors,
    risk_weight,
)


@jit
def step_rows(s2, lam_row, r, q, inv, rows):
    """Factors (r, q, inv rows, see ``factors``) of each penalty lam_row[i];
    rows[i] is the row holding lam_i's factors (a repeated penalty reuses them)."""
    for i in range(lam_row.shape[0]):
        if i > 0 and lam_row[i] == lam_row[i - 1]:
            rows[i] = rows[i - 1]
        else:
            factors(s2, lam_row[i], r[i], q[i], inv[i])
            rows[i] = i


@jit
def _sweep_risk_pairs(s2, t2, noise_var, n, lams, schedules, out, start, stop):
    B, p = s2.shape
    L, S = lams.shape
    G, K = schedules.shape
    # factors and weights (S rows each) of the pair's penalties; a repeated
    # penalty reuses the row of its first occurrence
    work = np.empty((5 * S, p))
    r, q, inv = work[:S], work[S : 2 * S], work[2 * S : 3 * S]
    bias_w, noise_w = work[3 * S : 4 * S], work[4 * S :]
    # u[j, g] of the even directions j (row j // 2; then the sums and xi of
    # the schedules) and of the odd ones: two allocations, so that the compiler
    # knows they never overlap and vectorizes over the schedules g
    half = (p + 1) // 2
    even = np.empty((half + 2, G))
    odd = np.empty((half, G))
    acc, xs = even[half], even[half + 1]
    paired = p - p % 2
    for bl in range(start, stop):
        b = bl // L
        l = bl - b * L
        for i in range(S):
            if i == 0 or lams[l, i] != lams[l, i - 1]:
                for j in range(p):
                    r[i, j], q[i, j], inv[i, j] = factor(s2[b, j], lams[l, i])
                    bias_w[i, j], noise_w[i, j] = risk_weight(
                        s2[b, j], t2[b, j], noise_var[b], n, inv[i, j]
                    )
        even[:half] = 0.0  # u_0 = 0
        odd[:] = 0.0
        i = 0
        for k in range(K + 1):
            # risk of u_k (factors of lam_k); then u_{k+1} = xi_{k+1} (q_k + r_k u_k)
            if 0 < k < S and lams[l, k] != lams[l, k - 1]:
                i = k
            for g in range(G):
                xs[g] = schedules[g, k] if k < K else 0.0
            acc[:] = 0.0
            for j in range(0, paired, 2):  # directions j, j + 1; sd_step is xi * b
                e, o = even[j // 2], odd[j // 2]
                r0, q0, b0, n0 = r[i, j], q[i, j], bias_w[i, j], noise_w[i, j]
                r1, q1, b1, n1 = r[i, j + 1], q[i, j + 1], bias_w[i, j + 1], noise_w[i, j + 1]
                for g in range(G):
                    fit = bias_factor(e[g], r0, q0)
                    first = acc[g] + risk_of_factors(b0, n0, fit, e[g])
                    e[g] = xs[g] * fit
                    fit = bias_factor(o[g], r1, q1)
                    acc[g] = first + risk_of_factors(b1, n1, fit, o[g])
                    o[g] = xs[g] * fit
            if paired < p:
                e, j = even[half - 1], p - 1
                for g in range(G):
                    fit = bias_factor(e[g], r[i, j], q[i, j])
                    acc[g] += risk_of_factors(bias_w[i, j], noise_w[i, j], fit, e[g])
                    e[g] = xs[g] * fit
            for g in range(G):
                out[b, l, g, k] = acc[g]


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
        Number of work units (any value gives the same results).
    """
    args = (s2, t2, noise_var, n, lams, schedules, out)
    run_chunks(_sweep_risk_pairs, chunks, s2.shape[0] * lams.shape[0], *args)


@jit
def _sweep_mse_pairs(s2, z, R, c_proj, resid2, n_eval, lams, schedules, out, start, stop):
    # a block of lambdas of one problem at a time, one per lane (see
    # :mod:`fastsd.kernels.spectral`): R's products vectorize across the lanes
    B, p = s2.shape
    L, S = lams.shape
    G, K = schedules.shape
    lanes = lane_count(p, L)
    ls = np.empty(lanes, dtype=np.int64)
    lam = np.empty(lanes)
    r = np.empty((S, p, lanes))
    q = np.empty((S, p, lanes))
    inv = np.empty((S, p, lanes))
    gz = np.empty((S, p, lanes))
    u = np.empty((p, lanes))
    v = np.empty((p, lanes))
    e = np.empty(lanes)
    mse = np.empty(lanes)
    first = start
    while first < stop:
        b, nb = block_lams(first, stop, L, ls)
        for i in range(S):
            for c in range(lanes):
                lam[c] = lams[ls[c], i]
            lane_factors(s2[b], lam, r[i], q[i], inv[i])
            for j in range(p):
                for c in range(lanes):
                    gz[i, j, c] = z[b, j] * inv[i, j, c]
        for g in range(G):
            u[:] = 0.0
            for k in range(K + 1):
                # MSE of u_k (factors of lam_k); then u_{k+1} = xi_{k+1} (q_k + r_k u_k)
                cur = min(k, S - 1)
                eval_mse_lanes(R[b], c_proj[b], resid2[b], n_eval, gz[cur], u, mse, v, e)
                for c in range(nb):
                    out[b, ls[c], g, k] = mse[c]
                if k < K:
                    xi = schedules[g, k]
                    for j in range(p):
                        for c in range(lanes):
                            u[j, c] = sd_step(u[j, c], r[cur, j, c], q[cur, j, c], xi)
        first += nb


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
        Upper triangular (entries below the diagonal are not read).
    c_proj : float64[B, m]
    resid2 : float64[B]
    n_eval : int
    lams : float64[L, S]
        As in :func:`sweep_risk` (S = 1 or K + 1).
    schedules : float64[G, K]
    out : float64[B, L, G, K + 1]
    chunks : int
    """
    args = (s2, z, R, c_proj, resid2, n_eval, lams, schedules, out)
    run_chunks(_sweep_mse_pairs, chunks, s2.shape[0] * lams.shape[0], *args)


@jit
def _sweep_risk_population_pairs(
    s2, t, sigma, cross, kappa, noise_diag, lams, schedules, out, start, stop
):
    B, p = s2.shape
    L, n_rows = lams.shape
    G, K = schedules.shape
    r = np.empty((n_rows, p))
    q = np.empty((n_rows, p))
    inv = np.empty((n_rows, p))
    rows = np.empty(n_rows, dtype=np.int64)
    u = np.empty((p, G))
    beta = np.empty((p, G))
    acc = np.empty(G)
    row_acc = np.empty(G)
    xs = np.empty(G)
    for bl in range(start, stop):
        b = bl // L
        l = bl - b * L
        step_rows(s2[b], lams[l], r, q, inv, rows)
        sigma_b = sigma[b]
        u[:, :] = 0.0
        for k in range(K + 1):
            i = rows[min(k, n_rows - 1)]
            acc[:] = kappa[b]
            for j in range(p):
                rj, qj, tj, mj, nj, ij = (
                    r[i, j],
                    q[i, j],
                    t[b, j],
                    cross[b, j],
                    noise_diag[b, j],
                    inv[i, j],
                )
                for g in range(G):
                    beta[j, g] = bias_factor(u[j, g], rj, qj) * tj
                    cj = (1.0 - u[j, g]) * ij
                    acc[g] += 2.0 * beta[j, g] * mj + cj * cj * nj
            for a in range(p):
                row_acc[:] = 0.0
                for j in range(p):
                    saj = sigma_b[a, j]
                    for g in range(G):
                        row_acc[g] += saj * beta[j, g]
                for g in range(G):
                    acc[g] += beta[a, g] * row_acc[g]
            for g in range(G):
                out[b, l, g, k] = acc[g]
            if k < K:
                for g in range(G):
                    xs[g] = schedules[g, k]
                for j in range(p):
                    rj, qj = r[i, j], q[i, j]
                    for g in range(G):
                        u[j, g] = sd_step(u[j, g], rj, qj, xs[g])


def sweep_risk_population(s2, t, sigma, cross, kappa, noise_diag, lams, schedules, out, chunks):
    """Population risk of every schedule after k = 0..K steps (reference
    ``sweep_risk_population``): with beta = (q_k + r_k u_k) t and c = a_k (1 - u_k),
    beta^T sigma beta + 2 beta^T cross + kappa + sum_j c_j^2 noise_diag_j, O(p^2) per cell
    (sigma, cross, kappa: the S, m, kappa of
    :func:`fastsd.reference.population.cov_projection`).

    Parameters
    ----------
    s2, t : float64[B, p]
    sigma : float64[B, p, p]
        V^T Sigma V.
    cross, noise_diag : float64[B, p]
        V^T Sigma theta_perp and noise_var s^2 diag(sigma).
    kappa : float64[B]
    lams : float64[L, S]
        As in :func:`sweep_risk`.
    schedules : float64[G, K]
    out : float64[B, L, G, K + 1]
    chunks : int
    """
    args = (s2, t, sigma, cross, kappa, noise_diag, lams, schedules, out)
    run_chunks(_sweep_risk_population_pairs, chunks, s2.shape[0] * lams.shape[0], *args)
