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
from numpy.typing import ArrayLike

from .._typing import FloatArray

__all__ = ["self_distill_refit"]


def self_distill_refit(
    X: ArrayLike, y: ArrayLike, lam: float, xi: ArrayLike, student_lams: ArrayLike | None = None
) -> FloatArray:
    """theta_k by refitting k + 1 ridge regressions on the mixed targets.

    Parameters
    ----------
    X : ndarray of shape (n, d) or (B, n, d)
    y : ndarray of shape (n,) or (B, n)
    lam : float
        Ridge penalty, >= 0.
    xi : sequence of float, length k
        Imitation parameter of each step (k = 0 gives ridge).
    student_lams : sequence of float, length k, optional
        Penalty of each student (lam_1..lam_k; default: all ``lam``), so that
        theta_i = (X^T X + lam_i I)^+ X^T (xi_i X theta_{i-1} + (1 - xi_i) y).

    Returns
    -------
    theta : ndarray of shape (d,) or (B, d)
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xi = np.asarray(xi, dtype=np.float64)
    lams = np.full(xi.shape[0], lam) if student_lams is None else np.asarray(student_lams, float)
    d = X.shape[-1]
    Xt = np.swapaxes(X, -1, -2)

    def fit(targets: FloatArray, penalty: float) -> FloatArray:
        if penalty == 0:
            return (np.linalg.pinv(X) @ targets[..., None])[..., 0]
        A = Xt @ X + penalty * np.eye(d)
        return np.linalg.solve(A, Xt @ targets[..., None])[..., 0]

    theta = fit(y, lam)
    for xi_i, lam_i in zip(xi, lams):
        teacher = (X @ theta[..., None])[..., 0]
        theta = fit(xi_i * teacher + (1.0 - xi_i) * y, lam_i)
    return theta
