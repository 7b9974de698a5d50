r"""The two parameterizations of a k-step self-distillation schedule.

With r = s^2/(s^2 + lam) and q = 1 - r = lam/(s^2 + lam) per eigen-direction,
k steps with imitation parameters xi_1..xi_k apply the filter

    phi_k = 1 - u_k,   u_0 = 0,   u_i = xi_i (q + r u_{i-1}),

(the ``u`` form of phi_i = xi_i r phi_{i-1} + 1 - xi_i, free of cancellation
when xi is huge). u_k is a polynomial in q without constant term,

    u_k = sum_{m=1..k} xibar_m q^m,

and ``xibar`` is the parameterization in which every squared risk is a
quadratic. Writing u_k = q h(r) with h a polynomial of degree k - 1 in r, the
schedule is read off h's coefficients as ratios:
xi_k = h_0, xi_{k-1} = h_1/h_0, ..., xi_{k-j} = h_j/h_{j-1}.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._typing import FloatArray
from .._validation import as_float_array

__all__ = ["xi_to_xibar", "xibar_to_xi"]


def xi_to_xibar(xi: ArrayLike) -> FloatArray:
    r"""Map imitation parameters xi to the quadratic parameterization xibar.

    Parameters
    ----------
    xi : array_like of shape (..., k)
        Imitation parameters, step 1 first; leading axes are independent schedules.

    Returns
    -------
    xibar : ndarray of shape (..., k)
        Coefficients with phi_k = 1 - sum_m xibar_m q^m (m = 1..k).

    Notes
    -----
    From u_i = xi_i (q + (1 - q) u_{i-1}). For k = 2:
    xibar = (xi_2 (1 + xi_1), -xi_1 xi_2).

    Examples
    --------
    >>> fastsd.xi_to_xibar([0.5, 2.0])
    array([ 3., -1.])
    """
    xi = as_float_array(xi, "xi", ndim=None, allow_empty=True)
    if xi.ndim == 0:
        raise ValueError("xi must be a sequence of length k (last axis), got a scalar")
    k = xi.shape[-1]
    # u[..., m] is the coefficient of q^(m+1)
    u = np.zeros(xi.shape[:-1] + (k,))
    for i in range(k):
        # q + (1 - q) u  -> coefficients: e_1 + u - shift(u)
        nxt = u.copy()
        nxt[..., 0] += 1.0
        nxt[..., 1:] -= u[..., :-1]
        u = xi[..., i, None] * nxt
    return u


def xibar_to_xi(xibar: ArrayLike) -> FloatArray:
    r"""Map the quadratic parameterization xibar back to imitation parameters xi.

    Parameters
    ----------
    xibar : array_like of shape (..., k)
        Coefficients of u_k = sum_m xibar_m q^m.

    Returns
    -------
    xi : ndarray of shape (..., k)

    Raises
    ------
    ValueError
        Where the inverse is undefined: some xi_i would be 0 (that step resets
        the student to the ridge teacher, so the earlier xi_j are arbitrary).

    Notes
    -----
    u_k(q = 1) = xi_k, and u_{k-1} = (u_k / xi_k - q) / (1 - q): a synthetic
    division by (1 - q), whose coefficients are prefix sums.

    Examples
    --------
    >>> fastsd.xibar_to_xi([3.0, -1.0])
    array([0.5, 2. ])
    """
    xibar = as_float_array(xibar, "xibar", allow_empty=True)
    if xibar.ndim == 0:
        raise ValueError("xibar must be a sequence of length k (last axis), got a scalar")
    k = xibar.shape[-1]
    xi = np.empty_like(xibar)
    u = xibar.copy()
    for i in range(k - 1, -1, -1):
        xi_i = u[..., : i + 1].sum(axis=-1)
        if np.any(xi_i == 0):
            raise ValueError(
                f"xibar has no xi representation: step {i + 1} would need xi = 0 "
                "(a reset to the ridge teacher, after which earlier steps are arbitrary)"
            )
        xi[..., i] = xi_i
        p = u[..., : i + 1] / xi_i[..., None]
        p[..., 0] -= 1.0
        u = np.cumsum(p, axis=-1)[..., :i]
    if not np.all(np.isfinite(xi)):
        raise ValueError("xibar is too ill-conditioned: the xi it maps to overflow")
    return xi


def xi_from_h_coefficients(h: FloatArray) -> FloatArray:
    """xi of the schedule whose u_k = q h(r); h given by r-coefficients.

    Parameters
    ----------
    h : ndarray of shape (..., k)
        Coefficients h_0..h_{k-1} of h in powers of r.

    Returns
    -------
    xi : ndarray of shape (..., k)
        ``xi[..., k-1-j] = h_j / h_{j-1}`` (h_{-1} = 1). Where h_{j-1} = 0 and all
        higher coefficients vanish too, the step is a harmless reset (xi = 0);
        other zero divisions give NaN (no schedule realizes that filter).
    """
    k = h.shape[-1]
    denom = np.concatenate([np.ones(h.shape[:-1] + (1,)), h[..., :-1]], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = h / denom
    # tail_zero[..., j]: h_j, h_{j+1}, ... all vanish
    tail_zero = np.flip(np.cumprod(np.flip(h == 0, axis=-1), axis=-1), axis=-1).astype(bool)
    ratio = np.where(tail_zero, 0.0, ratio)
    ratio = np.where((denom == 0) & ~tail_zero, np.nan, ratio)
    return np.flip(ratio, axis=-1) if k else ratio


def steps_table(xi: FloatArray) -> FloatArray:
    """Optimal-xi results (..., K, K), row k - 1 the k-step schedule, as a table by
    step count (..., K + 1, K): row k the k-step schedule, row 0 (ridge) all NaN."""
    K = xi.shape[-1]
    table = np.full(xi.shape[:-2] + (K + 1, K), np.nan)
    table[..., 1:, :] = xi
    return table
