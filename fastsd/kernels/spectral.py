"""Serial per-(problem, lambda) building blocks shared by the sweep kernels.

The lane helpers work on a block of pairs of one problem, one lambda (or
penalty schedule) per *lane*: the lane is the innermost axis of every work
array, so loops over eigen-directions vectorize across lanes while every
lane's sums run in the order of the directions. Lanes never mix, so the block
size changes the schedule of the work, never its arithmetic.
"""

from __future__ import annotations

from numba.extending import register_jitable

from .._jit import jit
from ..math.filters import fma


@register_jitable
def factor(s2, lam):
    """(r, q, inv) = (s^2/(s^2 + lam), lam/(s^2 + lam), 1/(s^2 + lam)) of one
    direction; s = 0 gives (0, 1, 0) (it carries nothing)."""
    if s2 > 0.0:
        inv = 1.0 / (s2 + lam)
        return s2 * inv, lam * inv, inv
    return 0.0, 1.0, 0.0


@register_jitable
def risk_weight(s2, t2, noise_var, n, inv):
    """(bias_w, noise_w) = ((s^2/n) t^2, (s^2/n) sigma^2 s^2 inv^2) of one direction."""
    w = s2 / n
    return w * t2, w * noise_var * s2 * inv * inv


@jit
def factors(s2, lam, r, q, inv):
    """:func:`factor` of every direction of s2 (p,) into r, q, inv (p,)."""
    for j in range(s2.shape[0]):
        r[j], q[j], inv[j] = factor(s2[j], lam)


@jit
def lane_count(p, L):
    """Lanes per block: about 16 KB per (p, lanes) work array, at most the L pairs
    of a problem (results do not depend on it)."""
    return max(1, min(L, max(8, min(64, 2048 // max(p, 1)))))


@jit
def block_lams(first, stop, L, ls):
    """The block of pairs from ``first``: one problem b = first // L, its lambdas
    ls[c] for the lanes c < nb (to the end of the problem, of ``stop`` or of the
    lanes); later lanes repeat the last one (computed, never written).
    Returns (b, nb)."""
    b, l0 = divmod(first, L)
    nb = min(ls.shape[0], L - l0, stop - first)
    for c in range(ls.shape[0]):
        ls[c] = l0 + min(c, nb - 1)
    return b, nb


@jit
def lane_factors(s2, lam, r, q, inv):
    """r, q, inv (p, lanes) of :func:`fastsd.kernels.spectral.factor` for s2 (p,), lam (lanes,)."""
    for j in range(s2.shape[0]):
        for c in range(lam.shape[0]):
            r[j, c], q[j, c], inv[j, c] = factor(s2[j], lam[c])


@jit
def eval_mse_lanes(R, c_b, resid2, n_eval, g, u, out, v, e):
    """out[c] = (resid2 + ||c - R ((1 - u) g)||^2) / n_eval for every lane c:
    R (m, p) upper triangular, g = z inv and u (p, lanes); v (p, lanes) and
    e (lanes,) are scratch. Each residual entry sums over j, then the squares
    over i, in order."""
    m, p = R.shape
    for j in range(p):
        for c in range(out.shape[0]):
            v[j, c] = (1.0 - u[j, c]) * g[j, c]
    out[:] = resid2
    for i in range(m):
        e[:] = c_b[i]
        last = i + (p - i) % 2  # two terms per pass, in order
        if last > i:
            rij = R[i, i]
            for c in range(out.shape[0]):
                e[c] -= rij * v[i, c]
        for j in range(last, p, 2):
            r0, r1 = R[i, j], R[i, j + 1]
            for c in range(out.shape[0]):
                e[c] = (e[c] - r0 * v[j, c]) - r1 * v[j + 1, c]
        for c in range(out.shape[0]):
            out[c] = fma(e[c], e[c], out[c])
    for c in range(out.shape[0]):
        out[c] /= n_eval
