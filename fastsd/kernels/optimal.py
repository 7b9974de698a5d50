"""Optimal-xi sweeps: for every (problem, lambda), all k = 1..K at once.

Mirrors :mod:`fastsd.reference.optimal` step by step (weighted Arnoldi on the
spectrum with two Gram-Schmidt passes, nested least squares, xi read off the
r-coefficients and checked by the forward recursion).

The validation and per-step kernels take the pairs of one problem a block at
a time, one lambda (or penalty schedule) per *lane* (see
:mod:`fastsd.kernels.spectral`): R's products and the Arnoldi inner products
vectorize across lanes while every lane's sums run in the order of the
directions. Per-lane scalar code remains where a lane branches on its own
(schedule recovery and acceptance, the back-substitution, LAPACK's lstsq).
The oracle kernel takes one pair at a time (its inner products in the fixed
order of :func:`fastsd.filters.dot`): the lane form compiles several times
slower, and it is the kernel most sessions call first. Neither the block size
nor the chunking of :func:`fastsd._jit.run_chunks` changes any arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

from .._config import BREAKDOWN_TOL
from .._jit import jit, run_chunks
from ..math.filters import (
    arnoldi,
    arnoldi_lanes,
    dot,
    fma,
    refit_rounding_ok,
    refit_step,
    risk_term,
    schedule_reproducible,
    xi_from_products_into,
)
from .spectral import block_lams, eval_mse_lanes, factor, lane_count, lane_factors, risk_weight

# ------------------------------------------------------------------ per-lane scalar rules


@jit
def refit_amplification(s2, lam):
    """p * cond(X^T X + lam I) on live directions (reference ``refit_amplification``)."""
    top = 0.0
    low = math.inf
    for j in range(s2.shape[0]):
        if s2[j] > 0.0:
            top = s2[j] if s2[j] > top else top
            low = s2[j] if s2[j] < low else low
    if low == math.inf:
        low = top
    return s2.shape[0] * (top + lam) / (low + lam)


@jit
def schedule_size(xi_row, k):
    """max |xi_i| over xi_row[:k] (inf if an entry is not finite)."""
    size = 0.0
    for i in range(k):
        if not math.isfinite(xi_row[i]):
            return math.inf
        size = abs(xi_row[i]) if abs(xi_row[i]) > size else size
    return size


@jit
def refit_can_reproduce(xi_row, k, amplification):
    """Whether xi_row[:k] can pass the a-priori bound of the acceptance rule (else its
    replay is skipped: the schedule would be rejected anyway)."""
    return refit_rounding_ok(schedule_size(xi_row, k), amplification)


@jit
def keep_if_reproducible(xi_row, k, achieved, optimum, k0, amplification):
    """NaN the schedule unless :func:`fastsd.math.filters.schedule_reproducible` accepts it
    (the rule of the reference's ``accept_schedules``)."""
    size = schedule_size(xi_row, k)
    if not schedule_reproducible(achieved, optimum, k0, size, amplification):
        for i in range(k):
            xi_row[i] = math.nan


# ------------------------------------------------------------------------- blocks of lanes


@jit
def lane_steps(steps, i, xs):
    """xs[c] = steps[i, c], NaN counted as 0 (a step that cannot be recovered)."""
    for c in range(xs.shape[0]):
        xs[c] = 0.0 if math.isnan(steps[i, c]) else steps[i, c]


@jit
def forward_lanes(rs, steps, k, phi):
    """phi_k of the schedules steps[:k, c] through the phi-form recursion, as a
    refit computes it (reference ``_u_of_schedules``); step i uses the factors
    rs[min(i, S - 1)] (rs (S, p, lanes); one penalty: S = 1). phi (p, lanes)."""
    S, p, lanes = rs.shape
    xs = np.empty(lanes)
    phi[:] = 1.0  # phi_0
    for i in range(k):
        lane_steps(steps, i, xs)
        r = rs[min(i, S - 1)]
        for j in range(p):
            for c in range(lanes):
                phi[j, c] = refit_step(phi[j, c], r[j, c], xs[c])


@jit
def risk_lanes(r, q, bias_w, noise_w, u, out):
    """out[c] = sum_j bias_w (q + r u)^2 + noise_w (1 - u)^2 for every lane c
    (arrays (p, lanes); the sum in the order of j)."""
    out[:] = 0.0
    for j in range(r.shape[0]):
        for c in range(out.shape[0]):
            out[c] += risk_term(bias_w[j, c], noise_w[j, c], r[j, c], q[j, c], u[j, c])


@jit
def combine_lanes(beta, basis, k, out):
    """out[j, c] = sum_{m < k} beta[m, c] basis[m, j, c] (a filter from its basis
    coefficients; beta (>= k, lanes), basis (>= k, p, lanes))."""
    out[:] = 0.0
    for m in range(k):
        for j in range(out.shape[0]):
            for c in range(out.shape[1]):
                out[j, c] = fma(beta[m, c], basis[m, j, c], out[j, c])


@jit
def products_from_basis(beta, h, k, coef):
    """coef[i, c] = sum_{m < k} beta[m, c] h[m, i, c]: the r-coefficients of the
    filter with basis coefficients beta (the products pi of its schedule)."""
    coef[:] = 0.0
    for m in range(k):
        for i in range(coef.shape[0]):
            for c in range(coef.shape[1]):
                coef[i, c] = fma(beta[m, c], h[m, i, c], coef[i, c])


@jit
def nested_lsq_lanes(D, target, alive, beta):
    """Householder QR of D[:, :, c] (m x K) and back-substitution for every prefix k.

    beta[k - 1, :k, c] solves min ||D[:, :k, c] b - target[:, c]||; columns from
    the first negligible pivot (or dead Arnoldi vector) on get 0 (reference
    ``nested_least_squares``). D (m, K, lanes) and target (m, lanes) are
    overwritten; beta is (K, K, lanes). The reflections run on every lane at
    once; a lane whose column is zero (or already triangular) skips it.
    """
    m, K, lanes = D.shape
    diag = np.zeros((K, lanes))
    norm = np.empty(lanes)
    v0 = np.empty(lanes)
    vnorm2 = np.empty(lanes)
    dot = np.empty(lanes)
    f = np.empty(lanes)
    for col in range(min(m, K)):
        norm[:] = 0.0
        for i in range(col, m):
            for c in range(lanes):
                norm[c] = fma(D[i, col, c], D[i, col, c], norm[c])
        for c in range(lanes):
            norm[c] = np.sqrt(norm[c])
            alpha = -norm[c] if D[col, col, c] >= 0.0 else norm[c]
            v0[c] = D[col, col, c] - alpha
            # reflector v = (v0, D[col+1:, col]), H = I - 2 v v^T / (v^T v)
            vnorm2[c] = v0[c] * v0[c] + norm[c] * norm[c] - D[col, col, c] * D[col, col, c]
            if norm[c] == 0.0:
                vnorm2[c] = 0.0  # nothing to reflect: the lane skips this column
            elif vnorm2[c] == 0.0:
                diag[col, c] = D[col, col, c]
            else:
                diag[col, c] = alpha
        for jj in range(col + 1, K + 1):  # the later columns, then the target (jj = K)
            column = target if jj == K else D[:, jj]
            for c in range(lanes):
                dot[c] = v0[c] * column[col, c]
            for i in range(col + 1, m):
                for c in range(lanes):
                    dot[c] = fma(D[i, col, c], column[i, c], dot[c])
            for c in range(lanes):
                f[c] = 2.0 * dot[c] / vnorm2[c] if vnorm2[c] != 0.0 else 0.0
                column[col, c] -= f[c] * v0[c]
            for i in range(col + 1, m):
                for c in range(lanes):
                    column[i, c] -= f[c] * D[i, col, c]
        for c in range(lanes):
            if vnorm2[c] != 0.0:
                D[col, col, c] = diag[col, c]
    beta[:] = 0.0
    for c in range(lanes):
        top = 0.0
        for col in range(K):
            top = max(top, abs(diag[col, c]))
        usable = 0
        while usable < K and alive[usable, c] and abs(diag[usable, c]) > BREAKDOWN_TOL * top:
            usable += 1
        for k in range(1, K + 1):
            for mm in range(min(k, usable) - 1, -1, -1):
                rest = 0.0
                for j in range(mm + 1, min(k, usable)):
                    rest = fma(D[mm, j, c], beta[k - 1, j, c], rest)
                beta[k - 1, mm, c] = (target[mm, c] - rest) / diag[mm, c]


@jit
def replay_lanes(coef, rs, k, steps, u):
    """Each lane's k-step schedule from its products coef[:k, c] into steps[:k, c],
    and u (p, lanes) = 1 - phi_k of that schedule replayed as a refit computes it
    (:func:`forward_lanes` with the factors rs)."""
    for c in range(coef.shape[1]):
        xi_from_products_into(coef[:, c], k, steps[:, c])
    forward_lanes(rs, steps, k, u)
    for j in range(u.shape[0]):
        for c in range(u.shape[1]):
            u[j, c] = 1.0 - u[j, c]


@jit
def record_lanes(xi, objective, b, ls, nb, k, steps, optimum, achieved, k0, amp):
    """Write the first nb lanes' optimum and k-step schedule (NaN unless a refit
    reproduces it, see :func:`keep_if_reproducible`) for problem b."""
    for c in range(nb):
        row = xi[b, ls[c], k - 1]
        row[:k] = steps[:k, c]
        objective[b, ls[c], k] = optimum[c]
        keep_if_reproducible(row, k, achieved[c], optimum[c], k0[c], amp[c])


# ------------------------------------------------------------- the validation objective


@jit
def validation_design_lanes(R, c_b, g, basis, k, D, target):
    """The validation least-squares problem over basis rows 0..k-1, per lane:
    D[:, :k] = R diag(g) basis^T and target = R g - c, g = z inv (p, lanes)
    (see ``sweep_optimal_validation``); D (m, >= k, lanes), target (m, lanes)."""
    m, p = R.shape
    for i in range(m):
        target[i, :] = -c_b[i]
        for j in range(i, p):
            rij = R[i, j]
            for c in range(g.shape[1]):
                target[i, c] = fma(rij, g[j, c], target[i, c])
        for mm in range(k):
            D[i, mm, :] = 0.0
            for j in range(i, p):
                rij = R[i, j]
                for c in range(g.shape[1]):
                    D[i, mm, c] = fma(rij * g[j, c], basis[mm, j, c], D[i, mm, c])


@jit
def validation_weights(R, z, inv, out):
    """out[j, c] = (z_j inv[j, c])^2 ||R[:, j]||^2: the weights of the validation fit."""
    m, p = R.shape
    for j in range(p):
        col2 = 0.0
        for i in range(min(j + 1, m)):
            col2 = fma(R[i, j], R[i, j], col2)
        for c in range(out.shape[1]):
            g = z[j] * inv[j, c]
            out[j, c] = g * g * col2


# ---------------------------------------------------------------- per-step penalty bases


@jit
def step_space_lanes(s2, logs, positive, k, E, x):
    """E_k = prod_{i < k, lam_i > 0} a_i scaled to max 1 per lane, and
    x = s^2 / max s^2 (reference :func:`fastsd.filters.step_space`).

    logs (K + 1, p, lanes) holds log a_i; positive (K + 1, lanes) marks
    lam_i > 0. Returns nothing; see :func:`step_basis_lanes` for k_eff.
    """
    p, lanes = E.shape
    smax = 0.0
    for j in range(p):
        smax = max(smax, s2[j])
    top = np.full(lanes, -np.inf)
    for j in range(p):
        for c in range(lanes):
            acc = 0.0
            for i in range(k):
                if positive[i, c]:
                    acc += logs[i, j, c]
            E[j, c] = acc
            if s2[j] > 0.0:
                top[c] = max(top[c], acc)
    for j in range(p):
        for c in range(lanes):
            E[j, c] = np.exp(E[j, c] - top[c]) if s2[j] > 0.0 else 0.0
            x[j, c] = s2[j] / smax if smax > 0.0 else 0.0


@jit
def step_basis_lanes(s2, logs, positive, k, weights, E, x, basis, h, alive):
    """Weighted orthonormal basis (rows 0..k-1 of ``basis``) of the k-step filters
    S_k = E_k P_{k_eff - 1}(x) for per-step penalties, per lane (reference
    ``step_basis``); k_eff = #{i < k: lam_i > 0}."""
    step_space_lanes(s2, logs, positive, k, E, x)
    arnoldi_lanes(x, E, weights, basis[:k], h[:k, :k], alive[:k], True)
    p, lanes = E.shape
    for c in range(lanes):
        k_eff = 0
        for i in range(k):
            if positive[i, c]:
                k_eff += 1
        for m in range(k_eff, k):
            alive[m, c] = False
            basis[m, :, c] = 0.0


@jit
def products_of_filter_into(s2, r, q, k, u, G, pi):
    """pi with sum_j pi_j g_j = u in least squares on the live nodes (reference
    :func:`fastsd.filters.products_of_filter`) for one lane: r, q (S, p), u (p,);
    G (p, >= k) is scratch."""
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
            norm = fma(G[j, c], G[j, c], norm)
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


@jit
def step_products(s2, r, q, k, u, G, coef):
    """coef[:k, c] = products pi of the lane-c filter u[:, c] over the k-step
    columns of its per-step penalties (r, q (K + 1, p, lanes))."""
    lanes = u.shape[1]
    pi = np.empty(k)
    for c in range(lanes):
        products_of_filter_into(
            s2,
            np.ascontiguousarray(r[:, :, c]),
            np.ascontiguousarray(q[:, :, c]),
            k,
            np.ascontiguousarray(u[:, c]),
            G,
            pi,
        )
        coef[:k, c] = pi


# ------------------------------------------------------------------------------ kernels


@jit
def _sweep_optimal_pairs(s2, t2, noise_var, n, lams, risk, xi, start, stop):
    B, p = s2.shape
    L = lams.shape[0]
    K = xi.shape[2]
    work = np.empty((11, p))  # one allocation, rows as vectors (less to compile)
    r, q, inv, bias_w, noise_w = work[0], work[1], work[2], work[3], work[4]
    a, au, u, phi, terms, ones = work[5], work[6], work[7], work[8], work[9], work[10]
    ones[:] = 1.0  # sums of terms are dot(terms, ones): one fixed order for every sum
    basis = np.empty((K, p))
    h = np.empty((K + 1, K))
    coef = h[K]
    alive = np.empty(K, dtype=np.bool_)
    for bl in range(start, stop):
        b = bl // L
        l = bl - b * L
        for j in range(p):
            r[j], q[j], inv[j] = factor(s2[b, j], lams[l])
            bias_w[j], noise_w[j] = risk_weight(s2[b, j], t2[b, j], noise_var[b], n, inv[j])
            # weights a of the least-squares fit of u*, and a u*
            a[j] = r[j] * r[j] * bias_w[j] + noise_w[j]
            au[j] = a[j] * (1.0 - r[j] * bias_w[j] / a[j] if a[j] > 0.0 else 0.0)
            u[j] = 0.0
            terms[j] = risk_term(bias_w[j], noise_w[j], r[j], q[j], 0.0)
        ridge = dot(terms, ones)
        risk[b, l, 0] = ridge
        amp = refit_amplification(s2[b], lams[l])
        arnoldi(r, q, a, basis, h[:K], alive, False)
        coef[:] = 0.0
        for m in range(K):
            alpha = dot(basis[m], au) if alive[m] else 0.0
            for j in range(p):  # u += alpha b_m, and the risk terms of u
                u[j] += alpha * basis[m, j]
                terms[j] = risk_term(bias_w[j], noise_w[j], r[j], q[j], u[j])
            optimum = dot(terms, ones)
            risk[b, l, m + 1] = optimum
            for i in range(K):
                coef[i] = fma(alpha, h[m, i], coef[i])
            row = xi[b, l, m]
            xi_from_products_into(coef, m + 1, row)
            achieved = math.nan  # no replay where the schedule cannot be kept anyway
            if refit_can_reproduce(row, m + 1, amp):
                phi[:] = 1.0  # phi_0; the refit-form replay, the risk in its last pass
                for i in range(m):
                    for j in range(p):
                        phi[j] = refit_step(phi[j], r[j], row[i])
                for j in range(p):
                    fwd = 1.0 - refit_step(phi[j], r[j], row[m])
                    terms[j] = risk_term(bias_w[j], noise_w[j], r[j], q[j], fwd)
                achieved = dot(terms, ones)
            keep_if_reproducible(row, m + 1, achieved, optimum, ridge, amp)


def sweep_optimal(s2, t2, noise_var, n, lams, risk, xi, chunks):
    """Oracle-optimal risk (B, L, K + 1) and xi (B, L, K, K) (NaN-filled on entry)."""
    args = (s2, t2, noise_var, n, lams, risk, xi)
    run_chunks(_sweep_optimal_pairs, chunks, s2.shape[0] * lams.shape[0], *args)


@jit
def _sweep_optimal_validation_pairs(s2, z, R, c_proj, resid2, n_eval, lams, mse, xi, start, stop):
    B, p = s2.shape
    m = R.shape[1]
    L = lams.shape[0]
    K = xi.shape[2]
    lanes = lane_count(p, L)
    ls = np.empty(lanes, dtype=np.int64)
    lam = np.empty(lanes)
    r = np.empty((1, p, lanes))
    q = np.empty((p, lanes))
    inv = np.empty((p, lanes))
    g = np.empty((p, lanes))
    weights = np.empty((p, lanes))
    u = np.empty((p, lanes))
    v = np.empty((p, lanes))
    basis = np.empty((K, p, lanes))
    h = np.empty((K, K, lanes))
    alive = np.empty((K, lanes), dtype=np.bool_)
    D = np.empty((m, K, lanes))
    target = np.empty((m, lanes))
    beta = np.empty((K, K, lanes))
    coef = np.empty((K, lanes))
    steps = np.empty((K, lanes))
    e = np.empty(lanes)
    k0 = np.empty(lanes)
    optimum = np.empty(lanes)
    achieved = np.empty(lanes)
    amp = np.empty(lanes)
    first = start
    while first < stop:
        b, nb = block_lams(first, stop, L, ls)
        Rb = R[b]
        for c in range(lanes):
            lam[c] = lams[ls[c]]
            amp[c] = refit_amplification(s2[b], lam[c])
        lane_factors(s2[b], lam, r[0], q, inv)
        for j in range(p):
            for c in range(lanes):
                g[j, c] = z[b, j] * inv[j, c]
        validation_weights(Rb, z[b], inv, weights)
        u[:] = 0.0
        eval_mse_lanes(Rb, c_proj[b], resid2[b], n_eval, g, u, k0, v, e)
        for c in range(nb):
            mse[b, ls[c], 0] = k0[c]
        if K > 0:
            arnoldi_lanes(r[0], q, weights, basis, h, alive, False)
            validation_design_lanes(Rb, c_proj[b], g, basis, K, D, target)
            nested_lsq_lanes(D, target, alive, beta)
        for k in range(1, K + 1):
            combine_lanes(beta[k - 1], basis, k, u)
            eval_mse_lanes(Rb, c_proj[b], resid2[b], n_eval, g, u, optimum, v, e)
            products_from_basis(beta[k - 1], h, k, coef)
            replay_lanes(coef, r, k, steps, u)
            eval_mse_lanes(Rb, c_proj[b], resid2[b], n_eval, g, u, achieved, v, e)
            record_lanes(xi, mse, b, ls, nb, k, steps, optimum, achieved, k0, amp)
        first += nb


def sweep_optimal_validation(s2, z, R, c_proj, resid2, n_eval, lams, mse, xi, chunks):
    """Validation-optimal MSE (B, L, K + 1) and xi (B, L, K, K) (NaN-filled on entry).

    The evaluation design enters through its thin QR, X_val V = Q R,
    c = Q^T y_val and resid2 = ||y_val - Q c||^2 (see ``sweep_mse``).
    """
    args = (s2, z, R, c_proj, resid2, n_eval, lams, mse, xi)
    run_chunks(_sweep_optimal_validation_pairs, chunks, s2.shape[0] * lams.shape[0], *args)


@jit
def step_setup(s2, lams, ls, r, q, inv, logs, positive, amp):
    """Factors r, q, inv (K + 1, p, lanes) of each lane's penalties lams[ls[c]],
    log a_i = log inv_i where s > 0 (for E_k), lam_i > 0 and the amplification
    of the worst-conditioned step."""
    S, p, lanes = r.shape
    lam = np.empty(lanes)
    for i in range(S):
        for c in range(lanes):
            lam[c] = lams[ls[c], i]
            positive[i, c] = lam[c] > 0.0
        lane_factors(s2, lam, r[i], q[i], inv[i])
        for j in range(p):
            for c in range(lanes):
                logs[i, j, c] = np.log(inv[i, j, c]) if s2[j] > 0.0 else 0.0
    for c in range(lanes):
        low = lams[ls[c], 0]
        for i in range(S):
            low = min(low, lams[ls[c], i])
        amp[c] = refit_amplification(s2, low)


@jit
def _sweep_optimal_steps_pairs(s2, t2, noise_var, n, lams, risk, xi, start, stop):
    B, p = s2.shape
    P = lams.shape[0]
    K = xi.shape[2]
    Kb = max(K, 1)
    lanes = lane_count(p, P)
    ls = np.empty(lanes, dtype=np.int64)
    r = np.empty((K + 1, p, lanes))
    q = np.empty((K + 1, p, lanes))
    inv = np.empty((K + 1, p, lanes))
    logs = np.empty((K + 1, p, lanes))
    positive = np.empty((K + 1, lanes), dtype=np.bool_)
    bias_w = np.empty((K + 1, p, lanes))
    noise_w = np.empty((K + 1, p, lanes))
    A = np.empty((p, lanes))
    u = np.empty((p, lanes))
    E = np.empty((p, lanes))
    x = np.empty((p, lanes))
    basis = np.empty((Kb, p, lanes))
    h = np.empty((Kb, Kb, lanes))
    alive = np.empty((Kb, lanes), dtype=np.bool_)
    D = np.empty((p, Kb, lanes))
    target = np.empty((p, lanes))
    beta = np.empty((Kb, Kb, lanes))
    G = np.empty((p, Kb))
    coef = np.empty((Kb, lanes))
    steps = np.empty((Kb, lanes))
    ridge = np.empty(lanes)
    optimum = np.empty(lanes)
    achieved = np.empty(lanes)
    amp = np.empty(lanes)
    first = start
    while first < stop:
        b, nb = block_lams(first, stop, P, ls)
        step_setup(s2[b], lams, ls, r, q, inv, logs, positive, amp)
        for i in range(K + 1):
            for j in range(p):
                for c in range(lanes):
                    bias_w[i, j, c], noise_w[i, j, c] = risk_weight(
                        s2[b, j], t2[b, j], noise_var[b], n, inv[i, j, c]
                    )
        u[:] = 0.0
        risk_lanes(r[0], q[0], bias_w[0], noise_w[0], u, ridge)
        for c in range(nb):
            risk[b, ls[c], 0] = ridge[c]
        for k in range(1, K + 1):
            for j in range(p):
                for c in range(lanes):
                    rb = r[k, j, c] * bias_w[k, j, c]
                    A[j, c] = r[k, j, c] * rb + noise_w[k, j, c]
                    root = np.sqrt(A[j, c])
                    target[j, c] = root * (1.0 - rb / A[j, c] if A[j, c] > 0.0 else 0.0)
            step_basis_lanes(s2[b], logs, positive, k, A, E, x, basis, h, alive)
            for j in range(p):
                for c in range(lanes):
                    root = np.sqrt(A[j, c])
                    for mm in range(k):
                        D[j, mm, c] = root * basis[mm, j, c]
            nested_lsq_lanes(D[:, :k], target, alive[:k], beta[:k, :k])
            combine_lanes(beta[k - 1], basis, k, u)
            risk_lanes(r[k], q[k], bias_w[k], noise_w[k], u, optimum)
            step_products(s2[b], r, q, k, u, G, coef)
            replay_lanes(coef, r, k, steps, u)
            risk_lanes(r[k], q[k], bias_w[k], noise_w[k], u, achieved)
            record_lanes(xi, risk, b, ls, nb, k, steps, optimum, achieved, ridge, amp)
        first += nb


def sweep_optimal_steps(s2, t2, noise_var, n, lams, risk, xi, chunks):
    """Oracle-optimal risk (B, P, K + 1) and xi (B, P, K, K) for per-step penalties.

    lams (P, K + 1): row l is a schedule lam_0..lam_K (reference
    ``sweep_optimal_steps``): for each k a weighted least-squares fit of
    u*_k over the k-step filters S_k = E_k P(x), in the basis built by
    Arnoldi in x from E_k; the products pi of the optimum give xi, checked
    by the refit-form replay. xi is NaN-filled on entry.
    """
    args = (s2, t2, noise_var, n, lams, risk, xi)
    run_chunks(_sweep_optimal_steps_pairs, chunks, s2.shape[0] * lams.shape[0], *args)


@jit
def _sweep_optimal_validation_steps_pairs(
    s2, z, R, c_proj, resid2, n_eval, lams, mse, xi, start, stop
):
    B, p = s2.shape
    m = R.shape[1]
    P = lams.shape[0]
    K = xi.shape[2]
    Kb = max(K, 1)
    lanes = lane_count(p, P)
    ls = np.empty(lanes, dtype=np.int64)
    r = np.empty((K + 1, p, lanes))
    q = np.empty((K + 1, p, lanes))
    inv = np.empty((K + 1, p, lanes))
    logs = np.empty((K + 1, p, lanes))
    positive = np.empty((K + 1, lanes), dtype=np.bool_)
    g = np.empty((p, lanes))
    weights = np.empty((p, lanes))
    u = np.empty((p, lanes))
    v = np.empty((p, lanes))
    E = np.empty((p, lanes))
    x = np.empty((p, lanes))
    basis = np.empty((Kb, p, lanes))
    h = np.empty((Kb, Kb, lanes))
    alive = np.empty((Kb, lanes), dtype=np.bool_)
    D = np.empty((m, Kb, lanes))
    target = np.empty((m, lanes))
    beta = np.empty((Kb, Kb, lanes))
    G = np.empty((p, Kb))
    coef = np.empty((Kb, lanes))
    steps = np.empty((Kb, lanes))
    e = np.empty(lanes)
    k0 = np.empty(lanes)
    optimum = np.empty(lanes)
    achieved = np.empty(lanes)
    amp = np.empty(lanes)
    first = start
    while first < stop:
        b, nb = block_lams(first, stop, P, ls)
        Rb = R[b]
        step_setup(s2[b], lams, ls, r, q, inv, logs, positive, amp)
        for j in range(p):
            for c in range(lanes):
                g[j, c] = z[b, j] * inv[0, j, c]
        u[:] = 0.0
        eval_mse_lanes(Rb, c_proj[b], resid2[b], n_eval, g, u, k0, v, e)
        for c in range(nb):
            mse[b, ls[c], 0] = k0[c]
        for k in range(1, K + 1):
            for j in range(p):
                for c in range(lanes):
                    g[j, c] = z[b, j] * inv[k, j, c]
            validation_weights(Rb, z[b], inv[k], weights)
            step_basis_lanes(s2[b], logs, positive, k, weights, E, x, basis, h, alive)
            validation_design_lanes(Rb, c_proj[b], g, basis, k, D, target)
            nested_lsq_lanes(D[:, :k], target, alive[:k], beta[:k, :k])
            combine_lanes(beta[k - 1], basis, k, u)
            eval_mse_lanes(Rb, c_proj[b], resid2[b], n_eval, g, u, optimum, v, e)
            step_products(s2[b], r, q, k, u, G, coef)
            replay_lanes(coef, r, k, steps, u)
            eval_mse_lanes(Rb, c_proj[b], resid2[b], n_eval, g, u, achieved, v, e)
            record_lanes(xi, mse, b, ls, nb, k, steps, optimum, achieved, k0, amp)
        first += nb


def sweep_optimal_validation_steps(s2, z, R, c_proj, resid2, n_eval, lams, mse, xi, chunks):
    """Validation-optimal MSE (B, P, K + 1) and xi (B, P, K, K) for per-step penalties.

    lams (P, K + 1) as in :func:`sweep_optimal_steps`; the objective is that of
    :func:`sweep_optimal_validation` with g_k = z / (s^2 + lam_k): fit
    R diag(g_k) u_k to R g_k - c over S_k (reference ``optimal_validation_steps``).
    """
    args = (s2, z, R, c_proj, resid2, n_eval, lams, mse, xi)
    run_chunks(_sweep_optimal_validation_steps_pairs, chunks, s2.shape[0] * lams.shape[0], *args)
