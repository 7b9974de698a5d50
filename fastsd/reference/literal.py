"""Literal k-step self-distillation: k + 1 ridge solves, refitting each student.

This is the definition, with no spectral trick, so that every faster path can
be checked against it:

    theta_0 = (X^T X + lam I)^+ X^T y
    theta_i = (X^T X + lam I)^+ X^T (xi_i X theta_{i-1} + (1 - xi_i) y),  i = 1..k

(``+`` is the pseudo-inverse, which for lam > 0 is the inverse and for lam = 0
gives the minimum-norm least-squares fit).
"""

from __future__ import annotations

import numpy as np

__all__ = ["self_distill_refit"]


def self_distill_refit(X, y, lam, xi):
    """theta_k by refitting k + 1 ridge regressions on the mixed targets.

    Parameters
    ----------
    X : ndarray of shape (n, d) or (B, n, d)
    y : ndarray of shape (n,) or (B, n)
    lam : float
        Ridge penalty, >= 0.
    xi : sequence of float, length k
        Imitation parameter of each step (k = 0 gives ridge).

    Returns
    -------
    theta : ndarray of shape (d,) or (B, d)
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = X.shape[-1]
    Xt = np.swapaxes(X, -1, -2)
    if lam == 0:
        X_pinv = np.linalg.pinv(X)

        def fit(targets):
            return (X_pinv @ targets[..., None])[..., 0]

    else:
        A = Xt @ X + lam * np.eye(d)

        def fit(targets):
            return np.linalg.solve(A, Xt @ targets[..., None])[..., 0]

    theta = fit(y)
    for xi_i in np.asarray(xi, dtype=np.float64):
        teacher = (X @ theta[..., None])[..., 0]
        theta = fit(xi_i * teacher + (1.0 - xi_i) * y)
    return theta
