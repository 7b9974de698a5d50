"""Serial per-(problem, lambda) building blocks shared by the sweep kernels."""

from __future__ import annotations

from .._jit import jit
from ..math.filters import risk_term


@jit()
def factors(s2, lam, r, q, inv):
    """r = s^2/(s^2 + lam), q = lam/(s^2 + lam), inv = 1/(s^2 + lam).

    Directions with s = 0 get r = 0, q = 1, inv = 0 (they carry nothing).
    """
    for j in range(s2.shape[0]):
        s = s2[j]
        if s > 0.0:
            i = 1.0 / (s + lam)
            r[j] = s * i
            q[j] = lam * i
            inv[j] = i
        else:
            r[j] = 0.0
            q[j] = 1.0
            inv[j] = 0.0


@jit()
def risk_weights(s2, t2, noise_var, n, inv, bias_w, noise_w):
    """bias_w = (s^2/n) t^2 and noise_w = (s^2/n) sigma^2 s^2 inv^2."""
    for j in range(s2.shape[0]):
        w = s2[j] / n
        bias_w[j] = w * t2[j]
        noise_w[j] = w * noise_var * s2[j] * inv[j] * inv[j]


@jit()
def risk_of_u(r, q, bias_w, noise_w, u):
    """sum_j bias_w (q + r u)^2 + noise_w (1 - u)^2."""
    acc = 0.0
    for j in range(r.shape[0]):
        acc += risk_term(bias_w[j], noise_w[j], r[j], q[j], u[j])
    return acc


@jit()
def chunk_bounds(total, chunks, c):
    """[start, stop) of chunk c when ``total`` items are split into ``chunks``."""
    size = (total + chunks - 1) // chunks
    start = c * size
    stop = min(total, start + size)
    return start, stop
