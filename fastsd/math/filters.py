r"""The self-distillation filter and the basis of its optimal-xi problem, in one place.

Every code path of fastsd (the NumPy reference, the Numba kernels, the
estimators' tuning rules) builds on the helpers of this module.

Filter
------
Per eigen-direction, with a_i = 1/(s^2 + lam_i), r_i = s^2 a_i, q_i = lam_i a_i
(lam_0 the teacher's penalty, lam_i that of student i; one lam for all steps is
the common case), the k-step estimator has spectral coefficient

    c_k = a_k (1 - u_k),    u_0 = 0,    u_i = xi_i (q_{i-1} + r_{i-1} u_{i-1}),

i.e. theta_k = V (c_k * z). This is c_i = xi_i r_i c_{i-1} + (1 - xi_i) a_i
divided by a_i (note r_i a_{i-1} / a_i = r_{i-1}), written so that nothing
cancels when xi is huge. Step i uses the factors of the *previous* penalty;
the risk of u_k uses those of lam_k: the fitted bias factor is
1 - s^2 c_k = q_k + r_k u_k and the noise factor is 1 - u_k.

Products parameterization
-------------------------
Unrolled, u_k = sum_{j=1..k} pi_j g_j with the products
pi_j = xi_k xi_{k-1} ... xi_{k-j+1} and the columns
g_j = (r_{k-1} ... r_{k-j+1}) q_{k-j} (empty product 1): every squared risk
is a quadratic in pi. With one lam, g_j = q r^(j-1) and pi are the
r-coefficients of h in u_k = q h(r). Back: xi_k = pi_1, xi_{k-j+1} = pi_j / pi_{j-1}.

The ``@register_jitable`` helpers, all but :func:`dot`, run as plain Python on NumPy
arrays (broadcasting) and are compiled inline into the Numba kernels, where their
:func:`fma` is one exactly rounded fused multiply-add (two roundings in
Python). The kernels' sums run in a written order (:func:`dot`,
:func:`lane_dot`): no compiler or CPU target can change their bytes.
"""

from __future__ import annotations

import math

import numpy as np
from numba.core import types
from numba.extending import intrinsic, overload, register_jitable

from .._config import BREAKDOWN_TOL, EPS, XI_REPLAY_RTOL, XI_ROUNDING_RTOL
from .._jit import jit
from .reparam import xi_from_h_coefficients
from .simd import vfma, vlane, vload, vzero

__all__ = [
    "fma",
    "dot",
    "lane_dot",
    "polynomial_basis",
    "arnoldi",
    "arnoldi_lanes",
    "sd_step",
    "refit_step",
    "bias_factor",
    "risk_of_factors",
    "risk_term",
    "refit_rounding_ok",
    "schedule_reproducible",
    "step_factors",
    "products_from_xi",
    "xi_from_products",
    "xi_from_products_into",
    "step_space",
    "step_columns",
    "products_of_filter",
]


def fma(a, b, c):
    """a * b + c, rounded once in compiled kernels (a fused multiply-add).

    Run as Python (on floats or NumPy arrays) it rounds twice, as NumPy does.
    In a kernel it is LLVM's ``llvm.fma``: the FMA instruction where the CPU
    has one, otherwise the C library's ``fma``, which is exactly rounded too --
    so a kernel gives the same bytes on every CPU target (the fallback is
    slower, not different).
    """
    return a * b + c


@intrinsic
def _fused(typingctx, a, b, c):
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


@overload(fma)
def _fma_kernel(a, b, c):
    return lambda a, b, c: _fused(a, b, c)


@register_jitable
def bias_factor(u, r, q):
    """1 - s^2 c = q + r u: the fitted fraction of the signal that is missed."""
    return fma(r, u, q)


@register_jitable
def sd_step(u, r, q, xi):
    """One step in filter space, u_i = xi_i (q + r u_{i-1}) (factors of lam_{i-1})."""
    return xi * bias_factor(u, r, q)


@register_jitable
def refit_step(phi, r, xi):
    """The same step in the form a literal refit computes, phi = 1 - u:
    phi_i = xi_i r phi_{i-1} + 1 - xi_i. It cancels (error ~ eps ``|xi|``) as
    refitting on mixed targets does; used to check reported schedules."""
    return xi * r * phi + (1.0 - xi)


@register_jitable
def schedule_reproducible(achieved, optimum, k0, size, amplification):
    """The one xi acceptance rule: may a schedule be reported (True) or is it NaN?

    ``achieved``: the objective replayed from the schedule through
    :func:`refit_step` (which cancels like a literal refit); ``optimum``: its
    minimum; ``k0``: the k = 0 objective (1e-14 |k0| is an absolute floor for
    optima near 0); ``size``: max |xi| over the schedule (NaN or inf if an entry
    is not finite); ``amplification``: p cond(X^T X + lam I) (the reference's
    ``refit_amplification``). Scalars in the kernels, broadcasting arrays in
    the reference.

    Accepted iff the replay attains the optimum to ``XI_REPLAY_RTOL`` (XI_RTOL / 2)
    and the a-priori rounding bound eps * size * amplification of a replay or a
    refit is at most ``XI_ROUNDING_RTOL`` (XI_RTOL / 4): a literal refit then
    reproduces the optimum to about XI_RTOL. The margin: the replay's own rounding
    (at most the bound, XI_RTOL / 4) is half its tolerance, so it cannot reject
    a schedule that is exact up to rounding; such a schedule is decided by the
    bound alone, a smooth function of xi that both backends evaluate alike.
    """
    tol = XI_REPLAY_RTOL * np.abs(optimum) + 1e-14 * np.abs(k0)
    replayed = np.isfinite(achieved) & (np.abs(achieved - optimum) <= tol)
    return replayed & refit_rounding_ok(size, amplification)


@register_jitable
def refit_rounding_ok(size, amplification):
    """The a-priori half of :func:`schedule_reproducible`: eps * size * amplification
    <= ``XI_ROUNDING_RTOL`` (a kernel skips the replay of a schedule that fails it)."""
    return EPS * size * amplification <= XI_ROUNDING_RTOL


@register_jitable
def risk_of_factors(bias_w, noise_w, b, u):
    """bias_w b^2 + noise_w (1 - u)^2, with b = :func:`bias_factor` of u."""
    v = 1.0 - u
    return fma(noise_w * v, v, bias_w * b * b)


@register_jitable
def risk_term(bias_w, noise_w, r, q, u):
    """Per-direction excess risk bias_w (q + r u)^2 + noise_w (1 - u)^2."""
    return risk_of_factors(bias_w, noise_w, bias_factor(u, r, q), u)


def step_factors(s2, lams):
    """r, q and a = 1/(s^2 + lam) per (lambda, direction); s = 0 gives r = 0, q = 1, a = 0.

    Parameters
    ----------
    s2 : ndarray of shape (..., p)
    lams : ndarray of shape (L,) or (L, S)
        One penalty per lambda, or a penalty schedule lam_0..lam_{S-1} per row.

    Returns
    -------
    r, q, a : ndarray of shape (..., L, p) or (..., L, S, p)
    """
    extra = lams.ndim
    s2 = s2.reshape(s2.shape[:-1] + (1,) * extra + s2.shape[-1:])
    lam = lams[..., None]
    live = s2 > 0
    den = np.where(live, s2 + lam, 1.0)
    r = np.where(live, s2 / den, 0.0)
    q = np.where(live, lam / den, 1.0)
    a = np.where(live, 1.0 / den, 0.0)
    return r, q, a


def products_from_xi(xi):
    """pi_j = xi_k ... xi_{k-j+1} (j = 1..k) for schedules xi of shape (..., k)."""
    return np.cumprod(np.flip(np.asarray(xi, dtype=np.float64), axis=-1), axis=-1)


def xi_from_products(pi):
    """Schedule xi of shape (..., k) from the products pi (..., k) (vectorized).

    ``xi[..., k-1-j] = pi_{j+1} / pi_j`` (pi_0 = 1). Where a product is 0 and
    all later ones vanish too the step is a harmless reset (xi = 0); other
    zero divisions give NaN (no schedule realizes that filter).
    """
    return xi_from_h_coefficients(pi)  # the same rule, kept public there


@register_jitable
def xi_from_products_into(pi, k, xi_row):
    """Scalar-loop form of :func:`xi_from_products` for the Numba kernels."""
    tail_zero = True  # pi[j:k] all vanish, scanned from the end
    for j in range(k - 1, -1, -1):
        tail_zero = tail_zero and pi[j] == 0.0
        denom = pi[j - 1] if j > 0 else 1.0
        if tail_zero:
            value = 0.0
        elif denom == 0.0:
            value = math.nan
        else:
            value = pi[j] / denom
        xi_row[k - 1 - j] = value


def step_space(s2, a_s, lams, k):
    """Start vector E_k and dimension of the k-step filters, per-step penalties.

    Every u_k = sum_j pi_j g_j lies in S_k = E_k * P_{k_eff - 1}(x) with
    E_k = prod_{i < k, lam_i > 0} a_i and k_eff = #{i < k: lam_i > 0}:
    g_j (s^2 + lam_{k-j}) ... (s^2 + lam_{k-1}) is lam_{k-j} x^{j-1} times a
    polynomial of degree k - j, their lowest powers differ, so they span all
    polynomials of degree <= k - 1 (a zero penalty kills its column and
    contributes a factor x instead of a pole). The space is built by Arnoldi
    in x = s^2 / max s^2 from E_k (:func:`polynomial_basis` with
    ``force_r``): orthonormal vectors times x, never a Vandermonde matrix
    or products of factors near 1.

    Parameters
    ----------
    s2 : ndarray of shape (..., p)
    a_s : ndarray of shape (..., L, S, p)
        1/(s^2 + lam_i) of the schedules (0 where s = 0).
    lams : ndarray of shape (L, S)
    k : int

    Returns
    -------
    E : ndarray of shape (..., L, p)
        E_k scaled to max 1 per row (scaling does not change the space).
    x : ndarray of shape (..., 1, p)
    k_eff : ndarray of int, shape (L,)
    """
    positive = lams[:, :k] > 0  # (L, k)
    with np.errstate(divide="ignore"):
        logs = np.where(
            a_s[..., :k, :] > 0,
            np.log(np.where(a_s[..., :k, :] > 0, a_s[..., :k, :], 1.0)),
            -np.inf,
        )
    logs = np.where(positive[..., None], logs, 0.0)
    log_e = np.sum(logs, axis=-2)
    top = np.max(np.where(np.isfinite(log_e), log_e, -np.inf), axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    E = np.where(np.isfinite(log_e), np.exp(log_e - top), 0.0)
    E = np.where(s2[..., None, :] > 0, E, 0.0)
    scale = np.max(s2, axis=-1, keepdims=True)
    x = np.where(scale > 0, s2 / np.where(scale > 0, scale, 1.0), 0.0)[..., None, :]
    return E, x, np.sum(positive, axis=-1)


def step_columns(rs, qs, k):
    """The columns g_j (j = 1..k) of u_k = sum_j pi_j g_j, shape (..., p, k).

    rs, qs (..., S, p) hold the factors of lam_0, lam_1, ...:
    g_j = r_{k-1} ... r_{k-j+1} q_{k-j}.
    """
    cols = []
    prod = np.ones(rs.shape[:-2] + rs.shape[-1:])
    for j in range(1, k + 1):
        cols.append(prod * qs[..., k - j, :])
        prod = prod * rs[..., k - j, :]
    return np.stack(cols, axis=-1)


def products_of_filter(u, rs, qs, k, live):
    """Least-squares products pi (..., k) with sum_j pi_j g_j = u on the live nodes.

    ``live`` (..., p) marks s > 0 (elsewhere every filter is irrelevant and
    q = 1). The columns are scaled to unit norm and solved with the
    pseudo-inverse; the map is intrinsically ill-conditioned (the optimal xi
    can be huge), so callers check the schedule by the refit-form replay.
    """
    G = step_columns(rs, qs, k) * live[..., :, None]
    norms = np.sqrt(np.sum(G * G, axis=-2))
    scale = np.where(norms > 0, norms, 1.0)
    pi = np.einsum("...kp,...p->...k", np.linalg.pinv(G / scale[..., None, :], rcond=1e-15), u)
    pi = pi / scale
    # a zero column (lam_{k-j} = 0: that teacher interpolates) leaves pi_j free;
    # pi_j = pi_{j-1} (xi_{k-j+1} = 1) keeps the ratios defined
    previous = np.ones(pi.shape[:-1])
    for j in range(k):
        pi[..., j] = np.where(norms[..., j] > 0, pi[..., j], previous)
        previous = pi[..., j]
    return pi


# ------------------------------------------------ one lambda: polynomial (Arnoldi) basis


def _wnorm(v, weights):
    return np.sqrt(np.sum(weights * v * v, axis=-1))


def polynomial_basis(r, q, weights, max_steps, force_r=False):
    """Weighted Arnoldi basis b_m = q h_m(x), m = 1..K, on the spectral nodes.

    Parameters
    ----------
    r, q, weights : ndarray of shape (..., p)
    max_steps : int
        K >= 1.
    force_r : bool, default=False
        Multiply by x = r always (otherwise x = q or r, whichever the weights
        put nearer 0). With q any start vector E this spans E P_{K-1}(r).

    Returns
    -------
    basis : ndarray of shape (..., K, p)
        Orthonormal in sum_j weights_j f_j g_j; zero rows after breakdown.
    h : ndarray of shape (..., K, K)
        Row m holds the coefficients of h_m in powers of r (degree m).
    alive : ndarray of bool, shape (..., K)
    """
    lead = r.shape[:-1]
    p = r.shape[-1]
    use_q = np.sum(weights * q, axis=-1) <= np.sum(weights * r, axis=-1)
    if force_r:
        use_q = np.zeros_like(use_q)
    x = np.where(use_q[..., None], q, r)
    basis = np.zeros(lead + (max_steps, p))
    h = np.zeros(lead + (max_steps, max_steps))
    alive = np.zeros(lead + (max_steps,), dtype=bool)

    norm = _wnorm(q, weights)
    alive[..., 0] = norm > 0
    scale = np.where(alive[..., 0], norm, 1.0)
    basis[..., 0, :] = np.where(alive[..., 0, None], q / scale[..., None], 0.0)
    h[..., 0, 0] = np.where(alive[..., 0], 1.0 / scale, 0.0)
    for m in range(1, max_steps):
        w = x * basis[..., m - 1, :]
        prev = h[..., m - 1, :]
        shifted = np.concatenate([np.zeros(lead + (1,)), prev[..., :-1]], axis=-1)
        hw = np.where(use_q[..., None], prev - shifted, shifted)  # x * h in r-coefficients
        before = _wnorm(w, weights)
        # Lanczos pass (x is self-adjoint in the weighted inner product, so
        # x b_{m-1} is orthogonal to all but the last two basis vectors), then
        # a full re-orthogonalization pass against every earlier vector.
        for first in (max(0, m - 2), 0):
            c = np.einsum("...mp,...p->...m", basis[..., first:m, :], weights * w)
            w = w - np.einsum("...m,...mp->...p", c, basis[..., first:m, :])
            hw = hw - np.einsum("...m,...mk->...k", c, h[..., first:m, :])
        after = _wnorm(w, weights)
        ok = alive[..., m - 1] & (after > BREAKDOWN_TOL * before)
        scale = np.where(ok, after, 1.0)
        basis[..., m, :] = np.where(ok[..., None], w / scale[..., None], 0.0)
        h[..., m, :] = np.where(ok[..., None], hw / scale[..., None], 0.0)
        alive[..., m] = ok
    return basis, h, alive


@register_jitable
def dot(a, b):
    """sum_j a_j b_j of two vectors (n,), in an order fixed by n alone.

    Eight partial sums (sum t takes j = t, t + 8, ... below the last multiple
    of 8, in increasing order, by fused multiply-adds; sum 0 then takes the
    rest), added pairwise: ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)).
    Eight chains keep the CPU busy where one would wait on each addition, and
    the order is written out, so no compiler or CPU target can change it. The
    sums are two vectors of four (:mod:`fastsd.math.simd`), one vector FMA per
    four terms: compiled code only.
    """
    n = a.shape[0]
    whole = n - n % 8
    low = vzero()  # sums 0..3
    high = vzero()  # sums 4..7
    for j in range(0, whole, 8):
        low = vfma(vload(a, j), vload(b, j), low)
        high = vfma(vload(a, j + 4), vload(b, j + 4), high)
    s0 = vlane(low, 0)
    for j in range(whole, n):  # the last n % 8 terms go to the first sum
        s0 = fma(a[j], b[j], s0)
    s1, s2, s3 = vlane(low, 1), vlane(low, 2), vlane(low, 3)
    s4, s5, s6, s7 = vlane(high, 0), vlane(high, 1), vlane(high, 2), vlane(high, 3)
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@jit
def arnoldi(r, q, weights, basis, h, alive, force_r):
    """Scalar-loop form of :func:`polynomial_basis` for one (problem, lambda), for the kernels.

    r, q, weights (p,); fills basis (K, p), h (K, K) and alive (K,) in place.
    Every weighted inner product is a :func:`dot` of ``weights * f`` with g.
    """
    K, p = basis.shape
    if K == 0:
        return
    use_q = dot(weights, q) <= dot(weights, r) and not force_r
    h[:, :] = 0.0
    basis[:, :] = 0.0
    alive[:] = False
    scratch = np.empty((2, p))  # one allocation, rows as vectors (less to compile)
    w, ww = scratch[0], scratch[1]
    for j in range(p):
        ww[j] = weights[j] * q[j]
    norm = math.sqrt(dot(ww, q))
    if not norm > 0.0:
        return
    alive[0] = True
    scale = 1.0 / norm  # scaling by the reciprocal: one division per vector
    for j in range(p):
        basis[0, j] = q[j] * scale
    h[0, 0] = scale
    x = q if use_q else r
    coefs = np.empty((2, K))
    hw, c = coefs[0], coefs[1]
    for m in range(1, K):
        for j in range(p):
            w[j] = x[j] * basis[m - 1, j]
            ww[j] = weights[j] * w[j]
        for i in range(K):  # x * h_{m-1} in r-coefficients
            shifted = h[m - 1, i - 1] if i > 0 else 0.0
            hw[i] = h[m - 1, i] - shifted if use_q else shifted
        before = math.sqrt(dot(ww, w))
        for first in (m - 2 if m > 2 else 0, 0):  # Lanczos pass, then full re-orthogonalization
            for i in range(first, m):
                c[i] = dot(basis[i], ww)
            for i in range(first, m):
                for j in range(p):
                    w[j] -= c[i] * basis[i, j]
                for jj in range(K):
                    hw[jj] -= c[i] * h[i, jj]
            for j in range(p):
                ww[j] = weights[j] * w[j]
        after = math.sqrt(dot(ww, w))
        if not after > BREAKDOWN_TOL * before:
            return
        alive[m] = True
        scale = 1.0 / after
        for j in range(p):
            basis[m, j] = w[j] * scale
        for jj in range(K):
            h[m, jj] = hw[jj] * scale


@register_jitable
def lane_dot(a, b, out):
    """out[c] = sum_j a[j, c] b[j, c] for every lane c, j in increasing order.

    a, b : (p, lanes). Each lane is one (problem, lambda) pair: the loop over
    lanes vectorizes and every lane's sum runs in the order of j (fused
    multiply-adds), so no compiler or CPU target can change it.
    """
    lanes = out.shape[0]
    p = a.shape[0]
    out[:] = 0.0
    for j in range(0, p - p % 2, 2):  # two terms per pass, in order
        for c in range(lanes):
            out[c] = fma(a[j + 1, c], b[j + 1, c], fma(a[j, c], b[j, c], out[c]))
    if p % 2:
        for c in range(lanes):
            out[c] = fma(a[p - 1, c], b[p - 1, c], out[c])


@jit
def arnoldi_lanes(r, q, weights, basis, h, alive, force_r):
    """Lane form of :func:`polynomial_basis` for the kernels: one (problem,
    lambda) pair per lane.

    r, q, weights : (p, lanes); fills basis (K, p, lanes), h (K, K, lanes) and
    alive (K, lanes) in place. Every weighted inner product <f, g> is the sum
    over j, in increasing order, of fused multiply-adds of ``weights f`` and g
    (as :func:`lane_dot`), each lane on its own; a lane whose basis breaks down
    keeps zero rows (and ``alive`` False) from there on.
    """
    K, p, lanes = basis.shape
    if K == 0:
        return
    sq = np.empty(lanes)
    sr = np.empty(lanes)
    lane_dot(weights, q, sq)
    lane_dot(weights, r, sr)
    use_q = np.empty(lanes, dtype=np.bool_)
    for c in range(lanes):
        use_q[c] = sq[c] <= sr[c] and not force_r
    h[:] = 0.0
    x = np.empty((p, lanes))
    w = np.empty((p, lanes))
    ww = np.empty((p, lanes))
    norm = np.zeros(lanes)
    for j in range(p):
        for c in range(lanes):
            x[j, c] = q[j, c] if use_q[c] else r[j, c]
            norm[c] = fma(weights[j, c] * q[j, c], q[j, c], norm[c])
    scale = np.empty(lanes)
    for c in range(lanes):
        norm[c] = np.sqrt(norm[c])
        alive[0, c] = norm[c] > 0.0
        scale[c] = 1.0 / norm[c] if alive[0, c] else 0.0
        h[0, 0, c] = scale[c]
    for j in range(p):
        for c in range(lanes):
            basis[0, j, c] = q[j, c] * scale[c] if alive[0, c] else 0.0
    hw = np.empty((K, lanes))
    coef = np.empty((K, lanes))
    before = np.empty(lanes)
    after = np.empty(lanes)
    for m in range(1, K):
        before[:] = 0.0
        for j in range(p):  # w = x b_{m-1}, ww = weights w, before = <w, w>
            for c in range(lanes):
                w[j, c] = x[j, c] * basis[m - 1, j, c]
                ww[j, c] = weights[j, c] * w[j, c]
                before[c] = fma(ww[j, c], w[j, c], before[c])
        for i in range(K):  # x h_{m-1} in r-coefficients
            for c in range(lanes):
                shifted = h[m - 1, i - 1, c] if i > 0 else 0.0
                hw[i, c] = h[m - 1, i, c] - shifted if use_q[c] else shifted
        for first in (max(0, m - 2), 0):  # Lanczos pass, then full re-orthogonalization
            for i in range(first, m):  # coef_i = <b_i, w> for first <= i < m
                lane_dot(basis[i], ww, coef[i])
            after[:] = 0.0
            for j in range(p):  # w -= sum_i coef_i b_i (i in order); ww, after = <w, w>
                for i in range(first, m):
                    for c in range(lanes):
                        w[j, c] -= coef[i, c] * basis[i, j, c]
                for c in range(lanes):
                    ww[j, c] = weights[j, c] * w[j, c]
                    after[c] = fma(ww[j, c], w[j, c], after[c])
            for i in range(first, m):
                for jj in range(K):
                    for c in range(lanes):
                        hw[jj, c] -= coef[i, c] * h[i, jj, c]
        for c in range(lanes):
            after[c] = np.sqrt(after[c])
            alive[m, c] = alive[m - 1, c] and after[c] > BREAKDOWN_TOL * np.sqrt(before[c])
            scale[c] = 1.0 / after[c] if alive[m, c] else 0.0
        for j in range(p):
            for c in range(lanes):
                basis[m, j, c] = w[j, c] * scale[c] if alive[m, c] else 0.0
        for jj in range(K):
            for c in range(lanes):
                h[m, jj, c] = hw[jj, c] * scale[c] if alive[m, c] else 0.0
