r"""Pieces shared by the three tuning rules (gcv, loo, holdout).

Every rule produces a :class:`TuningTable`: for each lambda and each k = 0..K
an estimated prediction risk minimized over the k-step schedule, the
minimizing xi, and whether that xi reproduces the minimum (the map from the
optimal filter to imitation parameters is intrinsically ill-conditioned; as
in :func:`fastsd.optimal_xi`, an xi that does not reproduce the optimum to
``fastsd.reference.XI_RTOL`` relative is NaN and the entry is not selectable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..reference.optimal import XI_RTOL, nested_least_squares
from ..reparam import xi_from_h_coefficients

__all__ = ["TuningTable", "nested_lstsq", "select", "reject_unreproducible",
           "xi_from_rows", "h_from_xi"]

#: A larger k must beat the best smaller-k risk by more than this (relative)
#: to be selected: differences at rounding level are ties, resolved towards
#: fewer steps.
K_TIE_RTOL = 1e-10


@dataclass
class TuningTable:
    """Estimated risks of every (lambda, k) with the minimizing schedules.

    Attributes
    ----------
    lams : ndarray of shape (L,)
    risk : ndarray of shape (L, K + 1)
        Estimated prediction risk (mean squared error), minimized over xi;
        ``inf`` where the rule is undefined (e.g. leverage 1 at lam = 0).
    xi : ndarray of shape (L, K + 1, K)
        ``xi[l, k, :k]`` is the minimizing k-step schedule; NaN after k and
        where not reproducible.
    valid : ndarray of bool, shape (L, K + 1)
        Finite risk and a reproducible xi (k = 0 needs no xi).
    """

    lams: np.ndarray
    risk: np.ndarray
    xi: np.ndarray
    valid: np.ndarray

    @property
    def max_steps(self):
        return self.risk.shape[1] - 1


def nested_lstsq(design, target, rcond=None):
    """min ||design[..., :k] beta - target|| for every k = 1..K (column-scaled QR).

    Parameters
    ----------
    design : ndarray of shape (..., N, K)
    target : ndarray of shape (..., N)

    Returns
    -------
    beta : ndarray of shape (..., K, K)
        Row k - 1 holds the k-column solution. Columns that are zero, or
        numerically dependent on the earlier ones, end the usable prefix
        (their coefficients and those after them are 0).
    """
    norms = np.sqrt(np.sum(design * design, axis=-2))
    alive = np.isfinite(norms) & (norms > 0)
    scale = np.where(alive, norms, 1.0)
    design = np.where(alive[..., None, :], design / scale[..., None, :], 0.0)
    if rcond is not None:
        # relative pivots of the column-scaled QR below rcond end the usable prefix
        Rd = np.abs(np.diagonal(np.linalg.qr(design, mode="r"), axis1=-2, axis2=-1))
        m = min(design.shape[-2], design.shape[-1])
        alive[..., :m] &= Rd[..., :m] > rcond
        alive[..., m:] = False
    beta = nested_least_squares(design, target, alive)
    return beta / scale[..., None, :]


def h_from_xi(xi):
    """r-coefficients of h with u_k = q h(r) for schedules xi of shape (..., k).

    These are the products pi_j = xi_k ... xi_{k-j+1} of :mod:`fastsd.filters`
    (the one place of the filter recursion).
    """
    from ..filters import products_from_xi

    return products_from_xi(xi)


def xi_from_rows(h_rows):
    """xi for every k from nested h coefficients.

    Parameters
    ----------
    h_rows : ndarray of shape (..., K, K)
        Row k - 1 holds h_0..h_{k-1} of the k-step filter (zeros after).

    Returns
    -------
    xi : ndarray of shape (..., K + 1, K)
        Row k holds the k-step schedule in its first k entries, NaN after
        (row 0: all NaN, ridge needs no xi).
    """
    K = h_rows.shape[-1]
    xi = np.full(h_rows.shape[:-2] + (K + 1, K), np.nan)
    for k in range(1, K + 1):
        xi[..., k, :k] = xi_from_h_coefficients(h_rows[..., k - 1, :k])
    return xi


def reject_unreproducible(xi, achieved, optimum, risk0):
    """Validity of each row of xi (..., K + 1, K) and xi with NaN where invalid.

    ``achieved`` (..., K + 1) is the criterion recomputed from xi through the
    forward recursion, ``optimum`` the minimum, ``risk0`` (...) the ridge value
    (an absolute floor for optima near 0). Row 0 (ridge) is valid where its
    risk is finite.
    """
    tol = XI_RTOL * np.abs(optimum) + 1e-14 * np.abs(risk0)[..., None]
    steps = np.arange(xi.shape[-1])
    lower = steps[None, :] < np.arange(xi.shape[-2])[:, None]  # (K + 1, K)
    finite_xi = np.all(np.isfinite(np.where(lower, xi, 0.0)), axis=-1)
    good = np.isfinite(optimum) & np.isfinite(achieved) & finite_xi
    good &= np.abs(np.where(good, achieved - optimum, 0.0)) <= tol
    good[..., 0] = np.isfinite(optimum[..., 0])
    return good, np.where(good[..., None] & lower, xi, np.nan)


def select(table, k=None):
    """Index (lambda index, k) of the best selectable entry.

    With ``k`` given, the best lambda for exactly k steps; otherwise the
    smallest k whose best risk is within ``K_TIE_RTOL`` of the overall best,
    and its best lambda (first one on ties). Returns None when nothing is
    selectable.
    """
    risk = np.where(table.valid, table.risk, np.inf)
    if k is not None:
        col = risk[:, k]
        if not np.any(np.isfinite(col)):
            return None
        return int(np.argmin(col)), int(k)
    if not np.any(np.isfinite(risk)):
        return None
    per_k = risk.min(axis=0)
    best = per_k.min()
    k_best = int(np.flatnonzero(per_k <= best + K_TIE_RTOL * abs(best))[0])
    return int(np.argmin(risk[:, k_best])), k_best
