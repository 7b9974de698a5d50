"""Serial per-(problem, lambda) building blocks shared by the sweep kernels."""

from __future__ import annotations

from numba.extending import register_jitable

from .._jit import jit


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
def risk_weights(s2, t2, noise_var, n, inv, bias_w, noise_w):
    """:func:`risk_weight` of every direction into bias_w, noise_w (p,)."""
    for j in range(s2.shape[0]):
        bias_w[j], noise_w[j] = risk_weight(s2[j], t2[j], noise_var, n, inv[j])
