"""Optimal-xi sweeps: for every (problem, lambda), all k = 1..K at once.

Mirrors :mod:`fastsd.reference.optimal` step by step (weighted Arnoldi on the
spectrum with two Gram-Schmidt passes, nested least squares, xi read off the
r-coefficients and checked by the forward recursion), one (problem, lambda)
pair per iteration of a parallel loop over chunks of pairs.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._config import BREAKDOWN_TOL, EPS, XI_RTOL, XI_SAFETY
from .._jit import jit
from ..math.filters import arnoldi, refit_step, xi_from_products_into
from .spectral import chunk_bounds, factors, risk_of_u, risk_weights


@jit()
def forward_u(rs, xi_row, k, u):
    """u_k = 1 - phi_k of xi_row[:k] through the phi-form recursion, as a refit
    computes it (see reference ``_u_of_schedules``); NaN entries count as 0.
    rs (S, p): step i uses row min(i - 1, S - 1) (one penalty: S = 1)."""
    S, p = rs.shape
    for j in range(p):
        u[j] = 1.0  # phi_0
    for i in range(k):
        xi = xi_row[i]
        if xi != xi:
            xi = 0.0
        row = min(i, S - 1)
        for j in range(p):
            u[j] = refit_step(u[j], rs[row, j], xi)
    for j in range(p):
        u[j] = 1.0 - u[j]


@jit()
def refit_amplification(s2, lam):
    """p * cond(X^T X + lam I) on live directions (reference ``refit_amplification``)."""
    top = 0.0
    low = np.inf
    for j in range(s2.shape[0]):
        if s2[j] > 0.0:
            top = max(top, s2[j])
            low = min(low, s2[j])
    if low == np.inf:
        low = top
    return s2.shape[0] * (top + lam) / (low + lam)


@jit()
def keep_if_reproducible(xi_row, k, achieved, optimum, k0, amplification):
    """NaN the schedule unless a refit reproduces it (reference ``accept_schedules``)."""
    tol = XI_RTOL / XI_SAFETY * abs(optimum) + 1e-14 * abs(k0)
    good = np.isfinite(achieved) and abs(achieved - optimum) <= tol
    size = 0.0
    for i in range(k):
        if not np.isfinite(xi_row[i]):
            good = False
        else:
            size = max(size, abs(xi_row[i]))
    if not EPS * size * amplification <= XI_RTOL:
        good = False
    if not good:
        for i in range(k):
            xi_row[i] = np.nan


@jit(parallel=True)
def sweep_optimal(s2, t2, noise_var, n, lams, risk, xi, chunks):
    """Oracle-optimal risk (B, L, K + 1) and xi (B, L, K, K) (NaN-filled on entry)."""
    B, p = s2.shape
    L = lams.shape[0]
    K = xi.shape[2]
    for c in prange(chunks):
        start, stop = chunk_bounds(B * L, chunks, c)
        r = np.empty(p)
        q = np.empty(p)
        inv = np.empty(p)
        bias_w = np.empty(p)
        noise_w = np.empty(p)
        a = np.empty(p)
        u_star = np.empty(p)
        u = np.empty(p)
        u_fwd = np.empty(p)
        basis = np.empty((K, p))
        h = np.empty((K, K))
        alive = np.empty(K, dtype=np.bool_)
        coef = np.empty(K)
        for bl in range(start, stop):
            b = bl // L
            l = bl - b * L
            factors(s2[b], lams[l], r, q, inv)
            risk_weights(s2[b], t2[b], noise_var[b], n, inv, bias_w, noise_w)
            for j in range(p):
                a[j] = r[j] * r[j] * bias_w[j] + noise_w[j]
                u_star[j] = 1.0 - r[j] * bias_w[j] / a[j] if a[j] > 0.0 else 0.0
                u[j] = 0.0
            ridge = risk_of_u(r, q, bias_w, noise_w, u)
            risk[b, l, 0] = ridge
            amp = refit_amplification(s2[b], lams[l])
            arnoldi(r, q, a, basis, h, alive, False)
            coef[:] = 0.0
            for m in range(K):
                alpha = 0.0
                if alive[m]:
                    for j in range(p):
                        alpha += basis[m, j] * a[j] * u_star[j]
                for j in range(p):
                    u[j] += alpha * basis[m, j]
                for i in range(K):
                    coef[i] += alpha * h[m, i]
                optimum = risk_of_u(r, q, bias_w, noise_w, u)
                risk[b, l, m + 1] = optimum
                row = xi[b, l, m]
                xi_from_products_into(coef, m + 1, row)
                forward_u(r.reshape((1, p)), row, m + 1, u_fwd)
                achieved = risk_of_u(r, q, bias_w, noise_w, u_fwd)
                keep_if_reproducible(row, m + 1, achieved, optimum, ridge, amp)


@jit()
def nested_lsq(D, target, alive, beta):
    """Householder QR of D (m x K) and back-substitution for every prefix k.

    beta[k - 1, :k] solves min ||D[:, :k] b - target||; columns from the first
    negligible pivot (or dead Arnoldi vector) on get 0 (reference
    ``nested_least_squares``). D and target are overwritten.
    """
    m, K = D.shape
    diag = np.zeros(K)
    steps = min(m, K)
    for col in range(steps):
        norm = 0.0
        for i in range(col, m):
            norm += D[i, col] * D[i, col]
        norm = np.sqrt(norm)
        if norm == 0.0:
            continue
        alpha = -norm if D[col, col] >= 0.0 else norm
        v0 = D[col, col] - alpha
        # reflector v = (v0, D[col+1:, col]), H = I - 2 v v^T / (v^T v)
        vnorm2 = v0 * v0 + norm * norm - D[col, col] * D[col, col]
        if vnorm2 == 0.0:
            diag[col] = D[col, col]
            continue
        for jj in range(col + 1, K):
            dot = v0 * D[col, jj]
            for i in range(col + 1, m):
                dot += D[i, col] * D[i, jj]
            f = 2.0 * dot / vnorm2
            D[col, jj] -= f * v0
            for i in range(col + 1, m):
                D[i, jj] -= f * D[i, col]
        dot = v0 * target[col]
        for i in range(col + 1, m):
            dot += D[i, col] * target[i]
        f = 2.0 * dot / vnorm2
        target[col] -= f * v0
        for i in range(col + 1, m):
            target[i] -= f * D[i, col]
        diag[col] = alpha
        D[col, col] = alpha
    top = 0.0
    for col in range(K):
        top = max(top, abs(diag[col]))
    usable = 0
    while usable < K and alive[usable] and abs(diag[usable]) > BREAKDOWN_TOL * top:
        usable += 1
    beta[:, :] = 0.0
    for k in range(1, K + 1):
        for mm in range(min(k, usable) - 1, -1, -1):
            rest = 0.0
            for j in range(mm + 1, min(k, usable)):
                rest += D[mm, j] * beta[k - 1, j]
            beta[k - 1, mm] = (target[mm] - rest) / diag[mm]


@jit()
def combine(beta_row, basis, k, out):
    """out = sum_{m < k} beta_row[m] basis[m] (a filter from its basis coefficients)."""
    for j in range(out.shape[0]):
        acc = 0.0
        for mm in range(k):
            acc += beta_row[mm] * basis[mm, j]
        out[j] = acc


@jit()
def validation_design(Rb, c_b, z_b, inv, basis, k, D, target):
    """The validation least-squares problem over basis rows 0..k-1: D = R diag(g) basis^T,
    target = R g - c, g = z inv (see ``sweep_optimal_validation``)."""
    m, p = Rb.shape
    for i in range(m):
        acc = -c_b[i]
        for j in range(i, p):
            acc += Rb[i, j] * z_b[j] * inv[j]
        target[i] = acc
        for mm in range(k):
            acc = 0.0
            for j in range(i, p):
                acc += Rb[i, j] * z_b[j] * inv[j] * basis[mm, j]
            D[i, mm] = acc


@jit()
def eval_mse(R, c_proj, resid2, n_eval, inv, z, u, v):
    """(resid2 + ||c - R ((1 - u) inv z)||^2) / n_eval."""
    m, p = R.shape
    for j in range(p):
        v[j] = (1.0 - u[j]) * inv[j] * z[j]
    acc = resid2
    for i in range(m):
        e = c_proj[i]
        for j in range(i, p):
            e -= R[i, j] * v[j]
        acc += e * e
    return acc / n_eval


@jit(parallel=True)
def sweep_optimal_validation(s2, z, R, c_proj, resid2, n_eval, lams, mse, xi, chunks):
    """Validation-optimal MSE (B, L, K + 1) and xi (B, L, K, K) (NaN-filled on entry).

    The evaluation design enters through its thin QR, X_val V = Q R,
    c = Q^T y_val and resid2 = ||y_val - Q c||^2 (see ``sweep_mse``).
    """
    B, p = s2.shape
    m = R.shape[1]
    L = lams.shape[0]
    K = xi.shape[2]
    for c in prange(chunks):
        start, stop = chunk_bounds(B * L, chunks, c)
        r = np.empty(p)
        q = np.empty(p)
        inv = np.empty(p)
        weights = np.empty(p)
        u = np.empty(p)
        v = np.empty(p)
        gb = np.empty(p)
        basis = np.empty((K, p))
        h = np.empty((K, K))
        alive = np.empty(K, dtype=np.bool_)
        D = np.empty((m, K))
        target = np.empty(m)
        beta = np.empty((K, K))
        coef = np.empty(K)
        for bl in range(start, stop):
            b = bl // L
            l = bl - b * L
            factors(s2[b], lams[l], r, q, inv)
            Rb = R[b]
            for j in range(p):
                col2 = 0.0
                for i in range(min(j + 1, m)):
                    col2 += Rb[i, j] * Rb[i, j]
                g = z[b, j] * inv[j]
                weights[j] = g * g * col2
                u[j] = 0.0
            k0 = eval_mse(Rb, c_proj[b], resid2[b], n_eval, inv, z[b], u, v)
            mse[b, l, 0] = k0
            amp = refit_amplification(s2[b], lams[l])
            if K == 0:
                continue
            arnoldi(r, q, weights, basis, h, alive, False)
            validation_design(Rb, c_proj[b], z[b], inv, basis, K, D, target)
            nested_lsq(D, target, alive, beta)
            for k in range(1, K + 1):
                combine(beta[k - 1], basis, k, gb)
                optimum = eval_mse(Rb, c_proj[b], resid2[b], n_eval, inv, z[b], gb, v)
                mse[b, l, k] = optimum
                for i in range(K):
                    acc = 0.0
                    for mm in range(k):
                        acc += beta[k - 1, mm] * h[mm, i]
                    coef[i] = acc
                row = xi[b, l, k - 1]
                xi_from_products_into(coef, k, row)
                forward_u(r.reshape((1, p)), row, k, u)
                achieved = eval_mse(Rb, c_proj[b], resid2[b], n_eval, inv, z[b], u, v)
                keep_if_reproducible(row, k, achieved, optimum, k0, amp)


@jit()
def step_space_into(s2, a, lam_row, k, E, x):
    """E_k = prod_{i < k, lam_i > 0} a_i scaled to max 1, and x = s^2 / max s^2
    (reference :func:`fastsd.math.filters.step_space`); returns k_eff."""
    p = s2.shape[0]
    k_eff = 0
    for i in range(k):
        if lam_row[i] > 0.0:
            k_eff += 1
    top = -np.inf
    smax = 0.0
    for j in range(p):
        smax = max(smax, s2[j])
        if s2[j] > 0.0:
            acc = 0.0
            for i in range(k):
                if lam_row[i] > 0.0:
                    acc += np.log(a[i, j])
            E[j] = acc
            top = max(top, acc)
    for j in range(p):
        E[j] = np.exp(E[j] - top) if s2[j] > 0.0 else 0.0
        x[j] = s2[j] / smax if smax > 0.0 else 0.0
    return k_eff


@jit()
def step_basis_into(s2, inv, lam_row, k, weights, E, x, basis, h, alive):
    """Weighted orthonormal basis (rows 0..k-1 of ``basis``) of the k-step filters
    S_k = E_k P_{k_eff - 1}(x) for per-step penalties (reference ``step_basis``)."""
    k_eff = step_space_into(s2, inv, lam_row, k, E, x)
    arnoldi(x, E, weights, basis[:k], h[:k, :k], alive[:k], True)
    for m in range(k):
        if m >= k_eff:
            alive[m] = False
        if not alive[m]:
            for j in range(x.shape[0]):
                basis[m, j] = 0.0


@jit()
def products_of_filter_into(s2, r, q, k, u, G, pi):
    """pi with sum_j pi_j g_j = u in least squares on the live nodes (reference
    :func:`fastsd.math.filters.products_of_filter`); G (p, >= k) is scratch."""
    p = u.shape[0]
    for j in range(p):
        prod = 1.0 if s2[j] > 0.0 else 0.0
        for c in range(k):
            G[j, c] = prod * q[k - 1 - c, j]
            prod *= r[k - 1 - c, j]
    Gk = np.empty((p, k))
    scale = np.empty(k)
    for c in range(k):
        norm = 0.0
        for j in range(p):
            norm += G[j, c] * G[j, c]
        scale[c] = np.sqrt(norm) if norm > 0.0 else 1.0
        for j in range(p):
            Gk[j, c] = G[j, c] / scale[c]
    sol = np.linalg.lstsq(Gk, u, 1e-15)[0]
    previous = 1.0
    for c in range(k):
        zero = True
        for j in range(p):
            if G[j, c] != 0.0:
                zero = False
        # a zero column (lam_{k-c-1} = 0) leaves pi free: xi = 1 keeps the ratios defined
        pi[c] = previous if zero else sol[c] / scale[c]
        previous = pi[c]


@jit(parallel=True)
def sweep_optimal_steps(s2, t2, noise_var, n, lams, risk, xi, chunks):
    """Oracle-optimal risk (B, P, K + 1) and xi (B, P, K, K) for per-step penalties.

    lams (P, K + 1): row l is a schedule lam_0..lam_K (reference
    ``sweep_optimal_steps``): for each k a weighted least-squares fit of
    u*_k over the k-step filters S_k = E_k P(x), in the basis built by
    Arnoldi in x from E_k; the products pi of the optimum give xi, checked
    by the refit-form replay. xi is NaN-filled on entry.
    """
    B, p = s2.shape
    P = lams.shape[0]
    K = xi.shape[2]
    Kb = max(K, 1)
    for c in prange(chunks):
        start, stop = chunk_bounds(B * P, chunks, c)
        r = np.empty((K + 1, p))
        q = np.empty((K + 1, p))
        inv = np.empty((K + 1, p))
        bias_w = np.empty((K + 1, p))
        noise_w = np.empty((K + 1, p))
        A = np.empty(p)
        u_star = np.empty(p)
        u = np.empty(p)
        u_fwd = np.empty(p)
        E = np.empty(p)
        x = np.empty(p)
        basis = np.empty((Kb, p))
        h = np.empty((Kb, Kb))
        alive = np.empty(Kb, dtype=np.bool_)
        D = np.empty((p, Kb))
        G = np.empty((p, Kb))
        target = np.empty(p)
        beta = np.empty((Kb, Kb))
        pi = np.empty(Kb)
        for bl in range(start, stop):
            b = bl // P
            l = bl - b * P
            low = lams[l, 0]
            for i in range(K + 1):
                factors(s2[b], lams[l, i], r[i], q[i], inv[i])
                risk_weights(s2[b], t2[b], noise_var[b], n, inv[i], bias_w[i], noise_w[i])
                low = min(low, lams[l, i])
            for j in range(p):
                u[j] = 0.0
            ridge = risk_of_u(r[0], q[0], bias_w[0], noise_w[0], u)
            risk[b, l, 0] = ridge
            amp = refit_amplification(s2[b], low)
            for k in range(1, K + 1):
                for j in range(p):
                    A[j] = r[k, j] * r[k, j] * bias_w[k, j] + noise_w[k, j]
                    u_star[j] = 1.0 - r[k, j] * bias_w[k, j] / A[j] if A[j] > 0.0 else 0.0
                step_basis_into(s2[b], inv, lams[l], k, A, E, x, basis, h, alive)
                for j in range(p):
                    root = np.sqrt(A[j])
                    target[j] = root * u_star[j]
                    for m in range(k):
                        D[j, m] = root * basis[m, j]
                nested_lsq(D[:, :k], target, alive[:k], beta[:k, :k])
                combine(beta[k - 1], basis, k, u)
                optimum = risk_of_u(r[k], q[k], bias_w[k], noise_w[k], u)
                risk[b, l, k] = optimum
                products_of_filter_into(s2[b], r, q, k, u, G, pi)
                row = xi[b, l, k - 1]
                xi_from_products_into(pi, k, row)
                forward_u(r, row, k, u_fwd)
                achieved = risk_of_u(r[k], q[k], bias_w[k], noise_w[k], u_fwd)
                keep_if_reproducible(row, k, achieved, optimum, ridge, amp)


@jit(parallel=True)
def sweep_optimal_validation_steps(s2, z, R, c_proj, resid2, n_eval, lams, mse, xi, chunks):
    """Validation-optimal MSE (B, P, K + 1) and xi (B, P, K, K) for per-step penalties.

    lams (P, K + 1) as in :func:`sweep_optimal_steps`; the objective is that of
    :func:`sweep_optimal_validation` with g_k = z / (s^2 + lam_k): fit
    R diag(g_k) u_k to R g_k - c over S_k (reference ``optimal_validation_steps``).
    """
    B, p = s2.shape
    m = R.shape[1]
    P = lams.shape[0]
    K = xi.shape[2]
    Kb = max(K, 1)
    for c in prange(chunks):
        start, stop = chunk_bounds(B * P, chunks, c)
        r = np.empty((K + 1, p))
        q = np.empty((K + 1, p))
        inv = np.empty((K + 1, p))
        weights = np.empty(p)
        col2 = np.empty(p)
        u = np.empty(p)
        v = np.empty(p)
        E = np.empty(p)
        x = np.empty(p)
        basis = np.empty((Kb, p))
        h = np.empty((Kb, Kb))
        alive = np.empty(Kb, dtype=np.bool_)
        D = np.empty((m, Kb))
        G = np.empty((p, Kb))
        target = np.empty(m)
        beta = np.empty((Kb, Kb))
        pi = np.empty(Kb)
        for bl in range(start, stop):
            b = bl // P
            l = bl - b * P
            Rb = R[b]
            low = lams[l, 0]
            for i in range(K + 1):
                factors(s2[b], lams[l, i], r[i], q[i], inv[i])
                low = min(low, lams[l, i])
            for j in range(p):
                acc = 0.0
                for i in range(min(j + 1, m)):
                    acc += Rb[i, j] * Rb[i, j]
                col2[j] = acc
                u[j] = 0.0
            k0 = eval_mse(Rb, c_proj[b], resid2[b], n_eval, inv[0], z[b], u, v)
            mse[b, l, 0] = k0
            amp = refit_amplification(s2[b], low)
            for k in range(1, K + 1):
                for j in range(p):
                    g = z[b, j] * inv[k, j]
                    weights[j] = g * g * col2[j]
                step_basis_into(s2[b], inv, lams[l], k, weights, E, x, basis, h, alive)
                validation_design(Rb, c_proj[b], z[b], inv[k], basis, k, D, target)
                nested_lsq(D[:, :k], target, alive[:k], beta[:k, :k])
                combine(beta[k - 1], basis, k, u)
                optimum = eval_mse(Rb, c_proj[b], resid2[b], n_eval, inv[k], z[b], u, v)
                mse[b, l, k] = optimum
                products_of_filter_into(s2[b], r, q, k, u, G, pi)
                row = xi[b, l, k - 1]
                xi_from_products_into(pi, k, row)
                forward_u(r, row, k, u)
                achieved = eval_mse(Rb, c_proj[b], resid2[b], n_eval, inv[k], z[b], u, v)
                keep_if_reproducible(row, k, achieved, optimum, k0, amp)
